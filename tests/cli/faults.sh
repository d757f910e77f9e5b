#!/usr/bin/env bash
# Fault injection: file size limit, full disk, read errors, a closed stdout, signals and
# SIGKILL during writes. Each must end in a clear error and exit code, with no partial file
# under the final name, no temp file left and an unchanged keystore.
. "$(dirname "$0")/lib/common.bash"

setup_keystore
kh --passphrase-file pass key create k
expect_code 0
head -c 3000000 /dev/urandom > big.bin
head -c 100000 /dev/urandom > small.bin

# --- file size limit (SIGXFSZ ignored, so the write fails with EFBIG) ---------------------
(ulimit -f 1000; exec "$KH_BIN" --passphrase-file pass encrypt -k k -o out.kh big.bin) \
  </dev/null >"$T/.out" 2>"$T/.err"
CODE=$?; ERR=$(cat "$T/.err"); OUT=""
expect_code 1; expect_error_format; expect_err "File too large"; expect_err "ulimit -f"
expect_no_file out.kh; expect_no_temp .
cp ks/keystore.json ks.before
(ulimit -f 1; exec "$KH_BIN" --passphrase-file pass key rotate k) </dev/null >"$T/.out" 2>"$T/.err"
CODE=$?; ERR=$(cat "$T/.err")
expect_code 1; expect_error_format; expect_err "File too large"
expect_same ks.before ks/keystore.json; expect_no_temp ks
kh --passphrase-file pass key show k
expect_code 0; expect_out "primary version:        1"

# --- full disk (a 1 MiB tmpfs; needs root and mount permission, skipped otherwise) ----------
mkdir full
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=1m tmpfs full 2>/dev/null; then
  kh --passphrase-file pass encrypt -k k -o full/out.kh big.bin
  expect_code 1; expect_error_format; expect_err "No space left on device"
  expect_no_file full/out.kh; expect_no_temp full
  # A keystore on the full disk: a failing rotate leaves it byte for byte unchanged.
  cp -a ks full/ks
  head -c 2000000 /dev/zero > full/filler 2>/dev/null
  cp full/ks/keystore.json ks.before
  kh --keystore full/ks --passphrase-file pass key rotate k
  expect_code 1; expect_error_format; expect_err "No space left on device"
  expect_same ks.before full/ks/keystore.json; expect_no_temp full/ks
  umount full
else
  echo "faults.sh: skipping the full-disk part (cannot mount a tmpfs here); ulimit -f covers EFBIG"
fi

# --- read errors and short input -----------------------------------------------------------
kh --passphrase-file pass encrypt -k k -o dir.kh full
expect_code 2; expect_error_format; expect_err "directory"; expect_no_file dir.kh; expect_no_temp .
kh --passphrase-file pass encrypt -k k -o mem.kh /proc/self/mem
expect_code 1; expect_error_format; expect_no_file mem.kh; expect_no_temp .
kh --passphrase-file pass encrypt -k k -o small.kh small.bin
expect_code 0
# A FIFO that closes after part of the object: an integrity error, nothing released.
mkfifo fifo
(head -c 5000 small.kh > fifo &)
kh --passphrase-file pass decrypt -o short.out fifo
expect_code 3; expect_error_format; expect_no_file short.out; expect_no_temp .
rm fifo

# --- a closed stdout: EPIPE, non-zero, no crash, no hang ----------------------------------
kh --passphrase-file pass encrypt -k k -o big.kh big.bin
expect_code 0
set -o pipefail
timeout 60 "$KH_BIN" --passphrase-file pass decrypt -o - big.kh 2>"$T/.err" | head -c 10 >/dev/null
CODE=${PIPESTATUS[0]}; ERR=$(cat "$T/.err")
set +o pipefail
expect_code 1; expect_error_format; expect_err "Broken pipe"

# --- SIGINT and SIGTERM while writing from a slow FIFO --------------------------------------
for sig in INT TERM; do
  mkfifo slow
  ( exec 3>slow; head -c 200000 big.bin >&3; sleep 30 ) &
  writer=$!
  "$KH_BIN" --passphrase-file pass encrypt -k k -o "sig-$sig.kh" slow </dev/null 2>"$T/.err" &
  pid=$!
  for _ in $(seq 100); do ls -a | grep -q '\.kh-tmp-' && break; sleep 0.05; done
  expect_true 'ls -a | grep -q "\.kh-tmp-"'   # the write is in progress
  kill -s "$sig" "$pid"
  wait "$pid"; CODE=$?
  kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
  num=$(kill -l "$sig")
  check; { [ "$CODE" -eq $((128 + num)) ] || [ "$CODE" -eq 130 ]; } || fail "SIG$sig: exit $CODE"
  expect_no_file "sig-$sig.kh"; expect_no_temp .
  rm -f slow
done

# --- encrypt -O: the batches fit the descriptor limit, and SIGTERM removes every pending
#     temp file (two workers, each holding a batch of about 250 files) --------------------
mkdir -p many/in
for i in $(seq 500); do printf 'file %d\n' "$i" > "many/in/f$i"; done
# 64 descriptors: each worker's batch shrinks to 3 groups of 2 files, two batches pending
# (with a fixed budget of 192 open temp files, every file past the limit failed with "Too
# many open files"); with many CPUs, overlap is off and batches are of 1 group.
(ulimit -Sn 64; exec "$KH_BIN" --passphrase-file pass encrypt -k k --detached -O many/lim many/in) \
  </dev/null >"$T/.out" 2>"$T/.err"
CODE=$?; ERR=$(cat "$T/.err"); OUT=""
expect_code 0; expect_err "encrypted 500 file(s)"
kh --passphrase-file pass decrypt -o many/f77.out many/lim/f77.kh
expect_code 0; expect_out ""; check; [ "$(cat many/f77.out)" = "file 77" ] || fail "f77 differs"
# SIGTERM: 190 detached objects are 380 temp files; with 4096 descriptors a worker commits
# its batch at 96 groups (two workers, each with a batch being written and one being committed
# on a thread of its own, share 768 temp files), so how many are pending when both workers
# block depends on how the files were shared out: 188 (one worker took 96 or more) to 380.
# Every one must be removed. (That the cleanup registry holds more than the 768 temp files a
# job may have pending is checked in test_file_io.cpp, which fills it.)
mkfifo many/in/zz1 many/in/zz2
exec 3<>many/in/zz1 4<>many/in/zz2   # writers that never write: both workers block on them
(ulimit -Sn 4096 2>/dev/null || exit 77
 exec "$KH_BIN" --passphrase-file pass encrypt -k k --detached -O many/out \
   $(for i in $(seq 190); do echo "many/in/f$i"; done) many/in/zz1 many/in/zz2) \
  </dev/null 2>/dev/null 3>&- 4>&- &
pid=$!
for _ in $(seq 400); do   # until both workers read a FIFO, their batches pending
  [ "$(ls -l /proc/$pid/fd 2>/dev/null | grep -c 'in/zz[12]$')" -eq 2 ] && break
  sleep 0.05
done
pending=$(find many/out -name '.*.kh-tmp-*' | wc -l)
kill -TERM $pid; wait $pid; rc=$?
exec 3>&- 4>&-
if [ $rc -eq 77 ]; then
  echo "faults.sh: skipping the SIGTERM part of encrypt -O (hard descriptor limit below 4096)"
else
  check; [ $rc -eq 143 ] || fail "expected death by SIGTERM (143), got $rc"
  check; [ "$pending" -ge 150 ] || fail "expected at least 150 pending temp files, saw $pending"
  check; [ -z "$(find many/out -name '.*.kh-tmp-*')" ] || fail "SIGTERM left temp files behind"
  echo "faults.sh: SIGTERM removed all $pending pending temp files of encrypt -O"
fi

# --- SIGKILL at random moments: no output, or a complete one that decrypts -----------------
head -c 40000000 /dev/urandom > huge.bin
complete=0
for i in $(seq 12); do
  rm -f kill.kh kill.out
  "$KH_BIN" --passphrase-file pass encrypt -k k -o kill.kh huge.bin </dev/null 2>/dev/null &
  pid=$!
  sleep "0.$(( RANDOM % 10 ))$(( RANDOM % 10 ))"
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ -e kill.kh ]; then
    complete=$((complete + 1))
    kh --passphrase-file pass decrypt -o kill.out kill.kh
    expect_code 0; expect_same huge.bin kill.out
  else
    check
  fi
  rm -f .kill.kh.kh-tmp-*   # SIGKILL cannot be handled: a stale temp file is expected
done
echo "faults.sh: $complete of 12 killed encryptions had finished; the others left no output"

finish
