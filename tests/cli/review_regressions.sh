#!/usr/bin/env bash
# Regressions for findings of the hostile review (REVIEW.md): each block failed before its fix.
. "$(dirname "$0")/lib/common.bash"
R=$("$KH_BIN" keygen -o me.key 2>/dev/null)
head -c 50000 /dev/urandom > data

# 1. A NAME.hdr beside an in-file object must not silently hide the object's real header
#    (rewrap would rewrite only the sidecar, scan would count the wrong version).
kh encrypt -r "$R" --detached -o obj.kh data
expect_code 0
kh encrypt -r "$R" -o obj.kh data
expect_code 1; expect_err "obj.kh.hdr exists"
kh encrypt -r "$R" -f -o obj.kh data
expect_code 0; expect_no_file obj.kh.hdr
kh -i me.key decrypt -o - obj.kh
expect_code 0
head -c 161 obj.kh > obj.kh.hdr   # a planted sidecar: a copy of the real header
for cmd in "inspect obj.kh" "-i me.key decrypt -o out obj.kh"; do
  kh $cmd
  expect_code 3; expect_err "in-file header and a sidecar"; expect_no_file out
done
rm obj.kh.hdr

# 2. --json must not append its summary to data written to stdout.
kh_in data --json encrypt -r "$R"
expect_code 0; expect_err '"done":1'
cp "$T/.out" j.kh
kh -i me.key --json decrypt -o - j.kh
expect_code 0; expect_err '"done":1'
check; cmp -s "$T/.out" data || fail "--json decrypt to stdout corrupted the plaintext"

# 5. -O DIR must not write through a symbolic link planted inside the output tree.
mkdir -p src/sub elsewhere out
cp data src/sub/a
ln -s "$T/elsewhere" out/sub
kh encrypt -r "$R" -O out src
expect_code 2; expect_err "symbolic link"
check; [ -z "$(ls elsewhere)" ] || fail "wrote through the planted link"

# 9. A FIFO named as an object is refused at once, not waited on.
mkfifo ff.kh
check; timeout 5 "$KH_BIN" inspect ff.kh >/dev/null 2>&1; rc=$?
[ "$rc" -ne 124 ] || fail "inspect hung on a FIFO"
# ...but a FIFO given to decrypt is a stream (process substitution works).
kh -i me.key decrypt -o - <(cat obj.kh)
expect_code 0

# 3/4/7. rewrap and reencrypt never write through a symbolic link, and never turn a link's
#    0777 into a real file's mode.
kh --passphrase-file pass init --insecure-fast-kdf-for-testing
kh --passphrase-file pass key create k
mkdir -p real links
kh --passphrase-file pass encrypt -k k -o real/o.kh data
ln -s "$T/real/o.kh" links/o.kh
kh --passphrase-file pass key rotate k
kh --passphrase-file pass rewrap links/o.kh
expect_code 9; expect_err "symbolic link"
kh --passphrase-file pass encrypt -k k --detached -o real/d.kh data
mv real/d.kh.hdr real/d.hdr.real && ln -s "$T/real/d.hdr.real" real/d.kh.hdr
kh --passphrase-file pass rewrap real/d.kh
expect_code 9
check; [ -L real/d.kh.hdr ] || fail "a symlinked sidecar was replaced"
rm real/d.kh.hdr && mv real/d.hdr.real real/d.kh.hdr && chmod 640 real/d.kh.hdr
kh --passphrase-file pass rewrap real/d.kh real/o.kh
expect_code 0
expect_true '[ "$(stat -c %a real/d.kh.hdr)" = 640 ]'
kh --passphrase-file pass decrypt -o - real/o.kh
expect_code 0

# 10. Two inputs that map to the same output under -O DIR are refused before anything is
#     written: with --force one would silently replace the other, and parallel workers could
#     pair one input's payload with the other's header.
mkdir -p dup/d1 dup/d2
head -c 3000 /dev/urandom > dup/d1/x; head -c 5000 /dev/urandom > dup/d2/x
kh encrypt -r "$R" -f --detached -O dupout dup/d1/x dup/d2/x
expect_code 2; expect_err "would both be written to"; expect_err "dup/d1/x and dup/d2/x"
expect_no_file dupout/x.kh; expect_no_file dupout/x.kh.hdr
kh encrypt -r "$R" -O dupout dup/d1/x dup/d1/x
expect_code 2; expect_err "would both be written to"
kh encrypt -r "$R" -O dupout dup            # the tree itself is fine: d1/x.kh and d2/x.kh
expect_code 0; expect_file dupout/d1/x.kh; expect_file dupout/d2/x.kh
kh encrypt -r "$R" -O dupout3/ ./dup//  # relative names are built during the walk: same tree
expect_code 0; expect_file dupout3/d1/x.kh; expect_file dupout3/d2/x.kh
cp dup/d1/x dup/x.out                       # decrypts to x.out, as does x (no .kh suffix)
cp dup/d1/x dup/x
"$KH_BIN" encrypt -r "$R" -o dup/x.out.kh dup/x.out 2>/dev/null
kh -i me.key decrypt -f -O dupplain dup/x dup/x.out.kh
expect_code 2; expect_err "would both be written to"; expect_no_file dupplain/x.out
kh -i me.key decrypt -O dupplain dupout/d1/x.kh dupout/d2/x.kh
expect_code 2; expect_err "would both be written to"

# 11. Replacing a detached object with an in-file one (--force) removes the old sidecar only
#     once the new object is in place: a job stopped before its batch is committed leaves
#     every old object whole (before, the old payload was left without its header).
mkdir -p stale/in stale/out
for i in 1 2 3 4 5 6 7 8; do head -c $((i * 1000)) /dev/urandom > stale/in/x$i; done
kh encrypt -r "$R" --detached -O stale/out stale/in
expect_code 0; expect_file stale/out/x8.kh.hdr
mkfifo stale/in/zz-fifo
exec 3<>stale/in/zz-fifo   # a writer that never writes: keyhold's read of the FIFO blocks
"$KH_BIN" encrypt -r "$R" -f -O stale/out stale/in/x? stale/in/zz-fifo 2>/dev/null &
pid=$!
for _ in $(seq 200); do   # until a worker reads the FIFO, its batch still pending
  ls -l /proc/$pid/fd 2>/dev/null | grep -q zz-fifo && break
  sleep 0.05
done
sleep 0.3
kill -TERM $pid; wait $pid; rc=$?
exec 3>&-
check; [ $rc -eq 143 ] || fail "expected death by SIGTERM (143), got $rc"
for i in 1 2 3 4 5 6 7 8; do
  kh -i me.key decrypt -f -o stale/p$i stale/out/x$i.kh
  expect_code 0; expect_same stale/p$i stale/in/x$i
done
expect_no_temp stale/out

# 12. Object names that strip to "." or ".." (..kh, ...kh) decrypt to NAME.out, and two of
#     them in different directories are not "the same output".
mkdir -p dots/a dots/b
"$KH_BIN" encrypt -r "$R" -o dots/a/..kh data 2>/dev/null
"$KH_BIN" encrypt -r "$R" -o dots/b/...kh data 2>/dev/null
cp dots/b/...kh dots/a/...kh
kh -i me.key decrypt -O dotsout dots
expect_code 0
expect_same dotsout/a/..kh.out data; expect_same dotsout/a/...kh.out data
expect_same dotsout/b/...kh.out data

# 13. encrypt -O trusts an output directory it checked only while it is still the same
#     directory: one swapped for a symbolic link mid-job stops the job (a per-directory
#     cache let 2742 of 3000 files land in the link's target).
mkdir -p swap/src/sub swap/elsewhere
for i in $(seq 4000); do echo "$i" > swap/src/sub/f$i; done
"$KH_BIN" encrypt -r "$R" -O swap/out swap/src 2>"$T/.swap.err" &
pid=$!
for _ in $(seq 400); do
  compgen -G "swap/out/sub/*.kh" >/dev/null && break
  sleep 0.005
done
if kill -STOP $pid 2>/dev/null; then
  # SIGSTOP is asynchronous: swap only once every thread has stopped (state T), or a
  # worker could recreate the directory between the mv and the ln.
  for _ in $(seq 500); do
    ! grep -qv '^T$' <(sed 's/.*) \(.\).*/\1/' /proc/$pid/task/*/stat 2>/dev/null) && break
    sleep 0.01
  done
  mv swap/out/sub swap/out/sub.moved && ln -s "$T/swap/elsewhere" swap/out/sub
  kill -CONT $pid
  wait $pid; rc=$?
  check; [ $rc -ne 0 ] || fail "a swapped output directory went unnoticed"
  check; grep -q "symbolic link" "$T/.swap.err" || fail "no symbolic-link error: $(head -2 "$T/.swap.err")"
  # At most one file per worker can be between its check and its create at the swap.
  n=$(ls -A swap/elsewhere | wc -l)
  check; [ "$n" -le "$(nproc)" ] || fail "$n files written through the planted link"
else
  wait $pid   # finished before it could be stopped: nothing to swap
fi

finish
