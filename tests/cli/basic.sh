#!/usr/bin/env bash
# Transcript tests: the everyday commands, from init to decrypt, and their error paths.
. "$(dirname "$0")/lib/common.bash"

# --- version and help -------------------------------------------------------------------
kh --version
expect_code 0; expect_out "keyhold "; expect_out "OpenSSL 3"; expect_out "libsodium "
kh --help
expect_code 0
for c in init slot keygen recipient key encrypt decrypt inspect rewrap; do expect_out "$c"; done
kh frobnicate
expect_code 2; expect_error_format

# --- missing keystore -------------------------------------------------------------------
kh --passphrase-file pass key list
expect_code 1; expect_error_format; expect_err "no keystore at $T/ks"; expect_err "keyhold: hint: "

# --- init -------------------------------------------------------------------------------
setup_keystore
expect_true '[ "$(stat -c %a ks)" = 700 ]'
expect_true '[ "$(stat -c %a ks/keystore.json)" = 600 ]'
kh --passphrase-file pass init --insecure-fast-kdf-for-testing
expect_code 1; expect_err "already exists"
# Passphrase never accepted in argv: there is no such flag.
kh --passphrase "secret" key list
expect_code 2

# --- keys -------------------------------------------------------------------------------
kh --passphrase-file pass key create backups --rotation-days 90
expect_code 0; expect_err "created key backups"
kh --passphrase-file pass key create backups
expect_code 1; expect_err "already exists"
kh --passphrase-file pass key create 'bad name!'
expect_code 2; expect_error_format
kh --passphrase-file pass key list
expect_code 0; expect_out "backups"; expect_out "v1"; expect_out "default"
kh --json --passphrase-file pass key show backups
expect_code 0; expect_out '"versions"'; expect_out '"state": "active"'; expect_out '"version": 1'
# Global options after the command work too.
kh key show backups --json --passphrase-file pass
expect_code 0; expect_out '"name": "backups"'
kh --passphrase-file pass key show nosuchkey
expect_code 1; expect_error_format; expect_err "nosuchkey"

# --- wrong passphrase -------------------------------------------------------------------
kh --passphrase-file wrong key list
expect_code 6; expect_error_format; expect_err "no unlock slot could be opened"
KEYHOLD_PASSPHRASE="correct horse battery staple" kh key list
expect_code 0; expect_out "backups"
exec 3<pass
kh --passphrase-fd 3 key list
expect_code 0
exec 3<&-

# --- encrypt / inspect / decrypt with context --------------------------------------------
head -c 40000 /dev/urandom > data.bin
kh --passphrase-file pass encrypt -k backups -c bucket=acme-prod -c object=invoices/11.pdf data.bin
expect_code 0; expect_file data.bin.kh; expect_empty_out
kh inspect data.bin.kh
expect_code 0; expect_out "bucket=acme-prod"; expect_out "object=invoices/11.pdf"
expect_out "kek     backups v1"; expect_out "40000 bytes of plaintext"
kh --json inspect data.bin.kh
expect_code 0; expect_out '"plaintext_bytes": 40000'; expect_out '"kind": "kek"'
expect_out '"bucket": "acme-prod"'
mv data.bin data.orig
kh --passphrase-file pass decrypt data.bin.kh
expect_code 0; expect_same data.orig data.bin
expect_true '[ "$(stat -c %a data.bin)" = 600 ]'
# Existing output is not overwritten without --force.
kh --passphrase-file pass decrypt data.bin.kh
expect_code 1; expect_err "already exists"; expect_err "--force"
kh --passphrase-file pass decrypt -f data.bin.kh
expect_code 0
kh --passphrase-file pass decrypt --expect-context bucket=acme-prod -o - data.bin.kh
expect_code 0
kh --passphrase-file pass decrypt --expect-context bucket=other -o out.bin data.bin.kh
expect_code 7; expect_error_format; expect_err "bucket"; expect_no_file out.bin

# --- tampering ---------------------------------------------------------------------------
cp data.bin.kh tampered.kh
flip_byte tampered.kh 30000
kh --passphrase-file pass decrypt -o t.out tampered.kh
expect_code 3; expect_error_format; expect_no_file t.out; expect_no_temp .
cp data.bin.kh tampered2.kh
flip_byte tampered2.kh 12
kh --passphrase-file pass decrypt -o t2.out tampered2.kh
expect_true '[ "$CODE" -eq 3 ] || [ "$CODE" -eq 4 ]'; expect_no_file t2.out
head -c 100 /dev/urandom > garbage.kh
kh --passphrase-file pass decrypt -o g.out garbage.kh
expect_code 3; expect_err "not a keyhold object"
kh inspect garbage.kh
expect_code 3; expect_error_format

# --- a multi-stripe object: regular files read at offsets by several threads -------------
# 3 MB is past the 33 chunks (528 KiB) one thread handles alone, so with -j 4 every thread
# reads its own stripes of the input (and of the ciphertext) with pread. A stdin redirected
# from a file is read the same way and must be left at its end, where a shell expects it.
head -c 3000000 /dev/urandom > big.bin
kh --passphrase-file pass encrypt -j 4 -k backups -o big.kh big.bin
expect_code 0
kh --passphrase-file pass decrypt -j 4 -o big.out big.kh
expect_code 0; expect_same big.bin big.out
kh_in big.bin --passphrase-file pass encrypt -j 4 -k backups -o big2.kh -
expect_code 0
kh --passphrase-file pass decrypt -j 1 -o big2.out big2.kh
expect_code 0; expect_same big.bin big2.out
left=$({ "$KH_BIN" --passphrase-file pass -q decrypt -j 4 -o - - >/dev/null 2>&1; wc -c; } <big.kh)
expect_true '[ "$left" = 0 ]'
# A chunk flipped deep in the object (in stripe 3): exit 3, no output, no temp file.
cp big.kh bigbad.kh
flip_byte bigbad.kh 1500000
kh --passphrase-file pass decrypt -j 4 -o bigbad.out bigbad.kh
expect_code 3; expect_error_format; expect_no_file bigbad.out; expect_no_temp .

# --- unreadable and missing input ---------------------------------------------------------
kh --passphrase-file pass encrypt -k backups -o x.kh nosuchfile
expect_code 1; expect_error_format; expect_err "nosuchfile"
mkdir adir
kh --passphrase-file pass encrypt -k backups -o x.kh adir
expect_code 2; expect_err "-O DIR"
kh --passphrase-file pass encrypt -k nokey data.orig -o x.kh
expect_code 1; expect_err "nokey"; expect_no_file x.kh

# --- keygen and recipients ---------------------------------------------------------------
R=$("$KH_BIN" keygen -o me.key 2>/dev/null)
expect_true '[[ "$R" == kh1* ]]'
expect_true '[ "$(stat -c %a me.key)" = 600 ]'
expect_true 'grep -q "^KH-SECRET-KEY-1" me.key'
kh keygen -o me.key
expect_code 1; expect_err "already exists"
# Encrypting to a recipient needs no keystore at all.
KEYHOLD_HOME=/nonexistent kh encrypt -r "$R" -o pub.kh data.orig
expect_code 0; expect_file pub.kh
KEYHOLD_HOME=/nonexistent kh decrypt -i me.key -o pub.out pub.kh
expect_code 0; expect_same data.orig pub.out
"$KH_BIN" keygen -o other.key >/dev/null 2>&1
KEYHOLD_HOME=/nonexistent kh decrypt -i other.key -o pub2.out pub.kh
expect_code 4; expect_error_format; expect_no_file pub2.out
kh --passphrase-file pass recipient add alice "$R"
expect_code 0
kh --passphrase-file pass recipient list
expect_code 0; expect_out "alice"; expect_out "$R"
kh --passphrase-file pass encrypt -r alice -k backups -o both.kh data.orig
expect_code 0
kh -i me.key decrypt -o both.out both.kh
expect_code 0; expect_same data.orig both.out
kh --passphrase-file pass recipient add bob not-a-recipient
expect_code 2; expect_error_format

# --- pipelines -----------------------------------------------------------------------------
cat data.orig | "$KH_BIN" encrypt -r "$R" | "$KH_BIN" decrypt -i me.key > piped.out
check; cmp -s data.orig piped.out || fail "stdin/stdout pipeline changed the data"
"$KH_BIN" encrypt -r "$R" < /dev/null > empty.kh
"$KH_BIN" decrypt -i me.key < empty.kh > empty.out
check; [ -f empty.out ] && [ ! -s empty.out ] || fail "empty message round trip"
# A truncated stream: error after the authenticated prefix, exit 3.
head -c 20000 pub.kh > trunc.kh
kh_in trunc.kh decrypt -i me.key
expect_code 3; expect_error_format

# --- detached headers ----------------------------------------------------------------------
kh --passphrase-file pass encrypt -k backups --detached -o det.kh data.orig
expect_code 0; expect_file det.kh; expect_file det.kh.hdr
kh inspect det.kh
expect_out "detached"
kh --passphrase-file pass decrypt -o det.out det.kh
expect_code 0; expect_same data.orig det.out

# --- trees -----------------------------------------------------------------------------------
mkdir -p tree/a/b && echo one > tree/a/1.txt && echo two > tree/a/b/2.txt && : > tree/empty
kh --passphrase-file pass encrypt -k backups -O enc tree
expect_code 0; expect_file enc/a/1.txt.kh; expect_file enc/a/b/2.txt.kh; expect_file enc/empty.kh
kh --passphrase-file pass decrypt -O dec enc
expect_code 0
check; diff -r tree dec >/dev/null || fail "tree round trip differs"
kh --passphrase-file pass encrypt -k backups tree/a/1.txt tree/a/b/2.txt
expect_code 2; expect_err "-O DIR"
# The walk takes regular files and directories only: links (to a file or a directory) and a
# FIFO are reported as skipped, and nothing is read through them. Under a timeout, so that a
# walk that opened the FIFO fails instead of waiting forever.
mkdir -p mixed/sub outside && echo in > mixed/sub/f && echo secret > outside/s
ln -s "$T/outside/s" mixed/link-to-file && ln -s "$T/outside" mixed/link-to-dir
mkfifo mixed/fifo
walk_mixed() {  # walk_mixed OUTDIR [ENV...]: encrypt the tree "mixed" into OUTDIR, then check
  local outdir=$1; shift
  CODE=0
  env "$@" timeout 120 "$KH_BIN" --passphrase-file pass encrypt -k backups -O "$outdir" mixed \
    </dev/null >"$T/.out" 2>"$T/.err" || CODE=$?
  OUT=$(cat "$T/.out")
  ERR=$(cat "$T/.err")
  expect_code 0; expect_err "encrypted 1 file(s)"; expect_file "$outdir/sub/f.kh"
  expect_err "skipped mixed/link-to-file (symbolic link, not followed)"
  expect_err "skipped mixed/link-to-dir (symbolic link, not followed)"
  expect_err "skipped mixed/fifo (not a regular file)"
  check; [ "$(find "$outdir" -type f | wc -l)" -eq 1 ] || fail "the walk followed a link or read the FIFO"
}
walk_mixed mixedenc
# under_shim VAR MARKER COMMAND ARGS...: runs COMMAND ARGS... with one more argument list of
# environment settings that preload the shim $VAR names (tests/tools/*_shim.cpp, built by
# ctest's build; ASan is told to accept it), then checks the shim said MARKER. Run by hand,
# without the variable, it is skipped with a note.
under_shim() {
  local var=$1 marker=$2
  shift 2
  if [ -z "${!var:-}" ]; then
    echo "note: $var unset, '$*' was not run" >&2
    return
  fi
  "$@" LD_PRELOAD="${!var}" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
  expect_err "$marker"
}
# Again where readdir reports no entry types (DT_UNKNOWN, as some file systems do): the walk
# then lstat()s each entry.
under_shim KH_DTUNKNOWN_SHIM "dtunknown-shim: readdir intercepted" walk_mixed mixedenc2
# Entries replaced after the walk listed them, at a fixed point: keyhold reads the passphrase
# (from a FIFO here) only after its walk, so the swaps happen while it waits for it. A file
# that became a FIFO or a link, or whose directory became a link, fails alone, unread;
# nothing hangs; the rest is processed.
swap_run() {  # swap_run [ENV...] -- COMMAND-WORDS...: keyhold, reading the passphrase from passfifo
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  rm -f passfifo && mkfifo passfifo
  env "${envs[@]}" timeout 120 "$KH_BIN" --passphrase-file passfifo "$@" \
    </dev/null >"$T/.out" 2>"$T/.err" &
  SWAP_PID=$!
  # Should keyhold end without opening the FIFO, the watchdog opens it after 120 s, so the
  # test goes on (and fails) instead of waiting forever.
  # (Its output goes nowhere: a leftover sleep must not hold ctest's pipe open.)
  (sleep 120; : <passfifo) >/dev/null 2>&1 &
  SWAP_WATCHDOG=$!
  exec 3>passfifo  # returns once keyhold has opened the FIFO: its walk is done
}
swap_finish() {
  cat pass >&3 2>/dev/null
  exec 3>&-
  kill "$SWAP_WATCHDOG" 2>/dev/null
  wait "$SWAP_WATCHDOG" 2>/dev/null
  CODE=0
  wait "$SWAP_PID" || CODE=$?
  OUT=$(cat "$T/.out")
  ERR=$(cat "$T/.err")
}
swap_encrypt() {  # swap_encrypt OUTDIR [ENV...]
  local outdir=$1; shift
  rm -rf swap && mkdir -p swap/sub swap/dir outside/dir && echo keep > swap/keep
  echo f > swap/f && echo l > swap/l && echo s > swap/sub/s && echo d > swap/dir/d
  echo TOPSECRET > outside/l && echo TOPSECRET > outside/dir/d
  swap_run "$@" -- encrypt -k backups -O "$outdir" swap
  rm swap/f && mkfifo swap/f
  rm swap/l && ln -s "$T/outside/l" swap/l
  mv swap/dir swap/dir.moved && ln -s "$T/outside/dir" swap/dir
  swap_finish
  expect_code 9; expect_err "encrypted 2 file(s)"; expect_err "3 failed"
  expect_err "swap/f: not a regular file"
  expect_err "swap/l: it, or a directory above it in the tree, is now a symbolic link"
  expect_err "swap/dir/d: it, or a directory above it in the tree, is now a symbolic link"
  expect_file "$outdir/keep.kh"; expect_file "$outdir/sub/s.kh"
  expect_no_file "$outdir/f.kh"; expect_no_file "$outdir/l.kh"; expect_no_file "$outdir/dir/d.kh"
}
swap_encrypt swapenc
# Again where the kernel has no openat2 (before 5.6, or filtered): one openat per component.
under_shim KH_NOOPENAT2_SHIM "noopenat2-shim: openat2 refused" swap_encrypt swapenc2
# The same for decrypt -O: its first object unlocks the keystore (the passphrase is read
# then), and the later ones were swapped meanwhile.
kh --passphrase-file pass encrypt -k backups -o outside/secret.kh outside/l
expect_code 0
swap_decrypt() {  # swap_decrypt OUTDIR [ENV...]
  local outdir=$1; shift
  rm -rf dswap dswap.moved outside/dsub && mkdir -p dswap/sub outside/dsub
  cp swapenc/keep.kh dswap/a.kh && cp swapenc/keep.kh dswap/f.kh
  cp swapenc/keep.kh dswap/l.kh && cp swapenc/keep.kh dswap/sub/s.kh
  cp outside/secret.kh outside/dsub/s.kh
  swap_run "$@" -- decrypt -O "$outdir" dswap
  rm dswap/f.kh && mkfifo dswap/f.kh
  rm dswap/l.kh && ln -s "$T/outside/secret.kh" dswap/l.kh
  mv dswap/sub dswap.moved && ln -s "$T/outside/dsub" dswap/sub
  swap_finish
  expect_code 9; expect_err "decrypted 1 file(s)"; expect_err "3 failed"
  expect_file "$outdir/a"; expect_no_file "$outdir/f"; expect_no_file "$outdir/l"
  expect_no_file "$outdir/sub/s"
}
swap_decrypt dswapdec
under_shim KH_NOOPENAT2_SHIM "noopenat2-shim: openat2 refused" swap_decrypt dswapdec2
# decrypt's recovery of an interrupted reencrypt (the old payload kept as
# NAME.kh-tmp-reencrypt-old) opens that backup beneath the root too: a directory swapped for
# a link must not lead it to a backup outside the tree (found by the hostile review).
kh --passphrase-file pass encrypt -k backups --detached -o outside/r.kh outside/l
expect_code 0
mv outside/r.kh outside/r.kh.kh-tmp-reencrypt-old && head -c 200 /dev/urandom >outside/r.kh
mkdir -p rswap/sub && cp outside/r.kh.hdr rswap/sub/r.kh.hdr
head -c 200 /dev/urandom >rswap/sub/r.kh
swap_run -- decrypt -O rswapdec rswap
mv rswap/sub rswap.moved && ln -s "$T/outside" rswap/sub
swap_finish
expect_code 9; expect_err "decrypted 0 file(s)"; expect_no_file rswapdec/sub/r
check; ! grep -rq TOPSECRET dswapdec dswapdec2 swapenc swapenc2 rswapdec 2>/dev/null ||
  fail "read through a link planted after the walk"
# A sidecar whose object name is a link loop: the walk neither follows nor stats it (a stat
# of the loop used to end the process with an uncaught exception).
mkdir -p loop && ln -s x loop/x && echo hdr > loop/x.hdr
kh --passphrase-file pass decrypt -O loopdec loop
expect_code 0; expect_err "skipped loop/x (symbolic link, not followed)"
kh scan loop
expect_code 0
# A bigger tree goes through the parallel workers and batched commits: every file appears,
# complete, and an output that exists fails alone (exit 9), never overwritten, no temp left.
mkdir -p big/x big/y
for i in $(seq 1 150); do head -c $((i * 97)) /dev/urandom >"big/$([ $((i % 2)) = 0 ] && echo x || echo y)/f$i"; done
kh --passphrase-file pass encrypt -k backups -O bigenc big
expect_code 0; expect_err "encrypted 150 file(s)"
check; [ "$(find bigenc -name '*.kh' | wc -l)" -eq 150 ] || fail "not 150 objects"
expect_no_temp bigenc/x; expect_no_temp bigenc/y
cp bigenc/x/f10.kh keep.kh
rm bigenc/y/f11.kh
kh --passphrase-file pass encrypt -k backups -O bigenc big
expect_code 9; expect_err "encrypted 1 file(s)"; expect_err "149 failed"; expect_err "already exists"
expect_same bigenc/x/f10.kh keep.kh; expect_file bigenc/y/f11.kh
expect_no_temp bigenc/x; expect_no_temp bigenc/y
kh --passphrase-file pass decrypt -O bigdec bigenc
expect_code 0; expect_err "decrypted 150 file(s)"
check; diff -r big bigdec >/dev/null || fail "big tree round trip differs"

# Into a -O DIR this command creates, outputs skip the early existence checks (nothing can be
# there yet); into one that existed, however it is named, a stale sidecar is still refused.
mkdir -p side/t old
printf 'x' >side/t/x
printf 'stale header' >old/x.kh.hdr
for out in old old/new/.. old/; do
  kh --passphrase-file pass encrypt -k backups -O "$out" side/t
  expect_code 9; expect_err "x.kh.hdr exists (the header of an earlier detached object)"
  expect_no_file old/x.kh; expect_no_temp old
done
kh --passphrase-file pass encrypt -k backups -O fresh/a/b side/t
expect_code 0; expect_file fresh/a/b/x.kh; expect_no_temp fresh/a/b
kh --passphrase-file pass encrypt -k backups --detached -O freshd side/t
expect_code 0; expect_file freshd/x.kh; expect_file freshd/x.kh.hdr
kh --passphrase-file pass decrypt -O freshdec freshd
expect_code 0; expect_same freshdec/x side/t/x
# The -O DIR is made before the first file, even for an empty tree.
mkdir -p emptytree
kh --passphrase-file pass encrypt -k backups -O emptyout emptytree
expect_code 0; expect_true '[ -d emptyout ]'
printf 'not a dir' >notadir
kh --passphrase-file pass encrypt -k backups -O notadir side/t
expect_code 1; expect_err "cannot create directory notadir: a file of that name exists"

# --- rotation, rewrap, states ----------------------------------------------------------------
kh --passphrase-file pass key rotate backups
expect_code 0; expect_err "version 2"
payload_before=$(tail -c 40000 data.bin.kh | sha256sum)
kh --passphrase-file pass rewrap data.bin.kh
expect_code 0; expect_err "rewrapped 1"
payload_after=$(tail -c 40000 data.bin.kh | sha256sum)
check; [ "$payload_before" = "$payload_after" ] || fail "rewrap changed the payload"
kh inspect data.bin.kh
expect_out "backups v2"; check; [[ "$OUT" != *"backups v1"* ]] || fail "old stanza kept"
kh --passphrase-file pass rewrap data.bin.kh
expect_code 0; expect_err "up to date 1"
kh --passphrase-file pass key retire backups 1
expect_code 0
kh --passphrase-file pass decrypt -o r1.out both.kh
expect_code 0
kh --passphrase-file pass key disable backups 1
expect_code 0
kh --passphrase-file pass decrypt -o r2.out both.kh
expect_code 5; expect_error_format; expect_err "disabled"; expect_no_file r2.out
kh --passphrase-file pass key enable backups 1
expect_code 0
kh --passphrase-file pass key policy backups --min-decryption-version 2
expect_code 0
kh --passphrase-file pass decrypt -o r3.out both.kh
expect_code 5; expect_err "min_decryption_version"
kh --passphrase-file pass key policy backups --min-decryption-version 1
kh --passphrase-file pass key destroy backups 1
expect_code 5; expect_err "--yes-destroy-key-material"
kh --passphrase-file pass key destroy backups 1 --yes-destroy-key-material
expect_code 0
kh --passphrase-file pass decrypt -o r4.out both.kh
expect_code 5; expect_err "destroyed"; expect_no_file r4.out
# The identity still opens it (it was also wrapped to alice).
kh -i me.key decrypt -o r5.out both.kh
expect_code 0
kh --passphrase-file pass key retire backups 2
kh --passphrase-file pass encrypt -k backups -o none.kh data.orig
expect_code 5; expect_error_format; expect_no_file none.kh

# --- slots -----------------------------------------------------------------------------------
kh --passphrase-file pass slot list
expect_code 0; expect_out "passphrase"
RS=$("$KH_BIN" keygen -o recovery.key 2>/dev/null)
kh --passphrase-file pass slot add-recipient "$RS"
expect_code 0
kh -i recovery.key key list
expect_code 0; expect_out "backups"
kh --json --passphrase-file pass slot list
expect_code 0; expect_out '"kind": "recipient"'
first=$("$KH_BIN" --json --passphrase-file pass slot list | grep -m1 '"id"' | sed 's/.*: "\(.*\)".*/\1/')
second=$("$KH_BIN" --json --passphrase-file pass slot list | grep '"id"' | tail -1 | sed 's/.*: "\(.*\)".*/\1/')
kh -i recovery.key slot remove "$first"
expect_code 0
kh -i recovery.key slot remove "$second"
expect_code 5; expect_err "last"

# --- permissions -----------------------------------------------------------------------------
chmod 644 ks/keystore.json
kh -i recovery.key key list
expect_code 8; expect_error_format; expect_err "chmod"
chmod 600 ks/keystore.json
chmod 755 ks
kh -i recovery.key key list
expect_code 8
chmod 700 ks
kh -i recovery.key key list
expect_code 0

finish
