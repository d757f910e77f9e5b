#!/usr/bin/env bash
# Secret hygiene of the running process: no core dump while key material is in memory (with
# a positive control showing this machine does write cores), no passphrase left in the
# environment or argv, and identity and keystore files private from creation (umask 000).
. "$(dirname "$0")/lib/common.bash"

setup_keystore
kh --passphrase-file pass key create k
expect_code 0
head -c 300000 /dev/urandom > data.bin
kh --passphrase-file pass encrypt -k k -o data.kh data.bin
expect_code 0

# start_holding NAME: a keyhold decrypt that has opened data.kh's header (so it holds the
# DEK and the unlocked keystore) and waits forever on a FIFO for the rest. Sets HOLD_PID and
# WRITER_PID. Extra environment comes from the caller's `env` prefix in HOLD_ENV.
start_holding() {
  rm -f "$1.fifo"; mkfifo "$1.fifo"
  ( exec 3>"$1.fifo"; head -c 70000 data.kh >&3; sleep 60 ) &
  WRITER_PID=$!
  env ${HOLD_ENV:-} "$KH_BIN" --passphrase-file pass decrypt -o "$1.out" "$1.fifo" \
    </dev/null >/dev/null 2>"$1.err" &
  HOLD_PID=$!
  sleep 1
}
stop_holding() {
  kill -9 "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null
  kill "$WRITER_PID" 2>/dev/null; wait "$WRITER_PID" 2>/dev/null
}

# --- core dumps -------------------------------------------------------------------------------
pattern=$(cat /proc/sys/kernel/core_pattern 2>/dev/null || echo "|")
if [[ "$pattern" == core* && "$pattern" != */* ]]; then
  for sig in SEGV ABRT; do
    mkdir -p "cores-$sig" && cd "cores-$sig" || exit 1
    ulimit -c unlimited
    # Positive control: an ordinary process in the same conditions leaves a core here.
    sleep 60 &
    ctl=$!; sleep 0.2; kill -s "$sig" "$ctl"; wait "$ctl" 2>/dev/null
    expect_true '[ -n "$(find . -type f \( -name core -o -name "core.*" \))" ]'
    rm -f core*
    cd "$T" || exit 1
    (cd "cores-$sig" && ulimit -c unlimited && cd "$T" && start_holding "hold-$sig" &&
      expect_true '[ -d /proc/$HOLD_PID ]' &&
      expect_true 'grep -q "^State:" /proc/$HOLD_PID/status' &&
      kill -s "$sig" "$HOLD_PID" && wait "$HOLD_PID"
      echo $? > "hold-$sig.code"; stop_holding)
    check; [ "$(cat "hold-$sig.code")" -ne 0 ] || fail "keyhold was not killed by SIG$sig"
    expect_true '[ -z "$(find "$T" -type f \( -name core -o -name "core.*" \))" ]'
    expect_no_file "hold-$sig.out"
  done
else
  echo "hardening.sh: skipping the core dump check (core_pattern '$pattern' is not a plain file)"
fi

# gcore (ptrace + /proc/PID/mem) of a keyhold holding the DEK is refused for a normal user
# by PR_SET_DUMPABLE 0; root bypasses that, so this part runs only when not root.
if command -v gcore >/dev/null 2>&1 && [ "$(id -u)" -ne 0 ]; then
  start_holding gc
  check; ! gcore -o "$T/gc-core" "$HOLD_PID" >/dev/null 2>&1 || fail "gcore attached to keyhold"
  stop_holding
fi

# --- passphrase not left in the environment or argv ------------------------------------------
secret="correct horse battery staple"
# Positive control: without the scrub, /proc/PID/environ shows the value.
KEYHOLD_PASSPHRASE="$secret" sleep 30 &
ctl=$!; sleep 0.2
expect_true 'grep -aq "$secret" /proc/$ctl/environ'
kill "$ctl"; wait "$ctl" 2>/dev/null
mkfifo env.fifo
( exec 3>env.fifo; head -c 70000 data.kh >&3; sleep 60 ) &
WRITER_PID=$!
KEYHOLD_PASSPHRASE="$secret" "$KH_BIN" decrypt -o env.out env.fifo </dev/null >/dev/null 2>env.err &
HOLD_PID=$!
sleep 1
expect_true '[ -d /proc/$HOLD_PID ]'
# The initial environment block is wiped in place (the name may remain, with no value).
expect_true '! tr "\0" "\n" </proc/$HOLD_PID/environ | grep -q "^KEYHOLD_PASSPHRASE=."'
expect_true '! grep -aq "$secret" /proc/$HOLD_PID/environ'
expect_true '! grep -aq "$secret" /proc/$HOLD_PID/cmdline'
stop_holding

# --- files private from creation, whatever the umask ------------------------------------------
umask 000
kh keygen -o id.key
expect_code 0; expect_true '[ "$(stat -c %a id.key)" = 600 ]'
KEYHOLD_HOME="$T/ks2" kh --passphrase-file pass init --insecure-fast-kdf-for-testing
expect_code 0
expect_true '[ "$(stat -c %a ks2)" = 700 ]'
expect_true '[ "$(stat -c %a ks2/keystore.json)" = 600 ]'
KEYHOLD_HOME="$T/ks2" kh --passphrase-file pass key create k2
expect_code 0
expect_true '[ "$(stat -c %a ks2/keystore.json)" = 600 ]'
expect_true '[ "$(stat -c %a ks2/keystore.json.bak)" = 600 ]'
kh --passphrase-file pass decrypt -o plain.out data.kh
expect_code 0; expect_true '[ "$(stat -c %a plain.out)" = 600 ]'
# Ciphertext is 0666 less the umask (payloads and detached headers, single and in a tree),
# the output tree's directories 0777 less the umask (made by the workers while the umask is
# in force: it is read once, before any thread starts); plaintext 0600.
for mask in 027 077 002; do
  umask "$mask"
  want=$(printf '%o' $((0666 & ~8#$mask))); want_dir=$(printf '%o' $((0777 & ~8#$mask)))
  rm -rf "tree-$mask" "enc-$mask" "det-$mask" "dec-$mask"; mkdir -p "tree-$mask/a" "tree-$mask/b"
  for i in 1 2 3 4 5 6; do echo "$i" > "tree-$mask/a/f$i"; echo "$i" > "tree-$mask/b/f$i"; done
  kh --passphrase-file pass encrypt -k k -o "one-$mask.kh" data.bin
  expect_code 0; expect_true '[ "$(stat -c %a one-$mask.kh)" = "$want" ]'
  kh --passphrase-file pass encrypt -k k -O "enc-$mask" "tree-$mask"
  expect_code 0
  expect_true '[ "$(find enc-$mask -type f | wc -l)" = 12 ]'
  expect_true '[ -z "$(find enc-$mask -type f ! -perm $want)" ]'
  expect_true '[ -z "$(find enc-$mask -type d ! -perm $want_dir)" ]'
  kh --passphrase-file pass encrypt -k k --detached -O "det-$mask" "tree-$mask"
  expect_code 0
  expect_true '[ "$(find det-$mask -type f -name "*.kh.hdr" | wc -l)" = 12 ]'
  expect_true '[ -z "$(find det-$mask -type f ! -perm $want)" ]'
  kh --passphrase-file pass decrypt -O "dec-$mask" "enc-$mask"
  expect_code 0
  expect_true '[ -z "$(find dec-$mask -type f ! -perm 600)" ]'
done
umask 022

finish
