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

finish
