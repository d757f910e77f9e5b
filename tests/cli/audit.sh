#!/usr/bin/env bash
# Transcript tests: the audit log records changes and key use, `log show` prints them,
# `log verify` passes on an untouched log and exits 3 on any edit, truncation or torn line.
. "$(dirname "$0")/lib/common.bash"

kh log --help
expect_code 0; expect_out "show"; expect_out "verify"

# --- a keystore's history ------------------------------------------------------------------
setup_keystore
expect_file ks/audit.log; expect_file ks/audit.head
expect_true '[ "$(stat -c %a ks/audit.log)" = 600 ]'
expect_true '[ "$(stat -c %a ks/audit.head)" = 600 ]'
kh --passphrase-file pass key create backups
expect_code 0
kh --passphrase-file pass key rotate backups
expect_code 0
printf 'secret plaintext 4242\n' > data.txt
kh --passphrase-file pass encrypt -k backups -o data.kh data.txt
expect_code 0
kh --passphrase-file pass decrypt -o data.out data.kh
expect_code 0; expect_same data.txt data.out
kh --passphrase-file pass key rotate backups
expect_code 0
kh --passphrase-file pass rewrap data.kh
expect_code 0
# Public-recipient work does not touch the keystore and is not logged.
R=$("$KH_BIN" keygen -o me.key 2>/dev/null)
kh encrypt -r "$R" -o pub.kh data.txt
expect_code 0

kh --json --passphrase-file pass log show
expect_code 0
expect_out '"intact": true'
expect_out '"event": "audit.genesis"'
expect_out '"event": "keystore.init"'
expect_out '"event": "key.create"'
expect_out '"event": "key.rotate"'
expect_out '"event": "use.encrypt"'
expect_out '"event": "use.decrypt"'
expect_out '"keys": "backups v2"'
expect_out '"event": "use.rewrap"'
expect_out '"keys": "backups v3"'
expect_out '"object": "data.kh"'
expect_out '"verified": true'
check; [[ "$OUT" != *'"verified": false'* ]] || fail "an entry is unverified"
check; [[ "$OUT" != *"pub.kh"* ]] || fail "a recipient-only encryption was logged"
# Never content, never secrets.
check; ! grep -q "secret plaintext" ks/audit.log || fail "plaintext in the audit log"
check; ! grep -qi "correct horse" ks/audit.log || fail "passphrase in the audit log"

kh --passphrase-file pass log show
expect_code 0; expect_out "key.rotate"; expect_out "keys=\"backups v2\" object=data.kh"
kh --passphrase-file pass log show --key nosuchkey
expect_code 0; expect_empty_out
kh --passphrase-file pass log show --key backups
expect_code 0; expect_out "key.create"; check; [[ "$OUT" != *"audit.genesis"* ]] || fail "--key"
kh --passphrase-file pass log show --since 2999-01-01
expect_code 0; expect_empty_out
kh --passphrase-file pass log show --since 2000-01-01T00:00:00+02:00
expect_code 0; expect_out "audit.genesis"
kh --passphrase-file pass log show --since yesterday
expect_code 2; expect_error_format; expect_err "invalid date"

kh --passphrase-file pass log verify
expect_code 0; expect_out "audit log intact: "
kh --json --passphrase-file pass log verify
expect_code 0; expect_out '"intact": true'; expect_out '"first_problem": null'
# Verify needs the unlocked keystore.
kh --passphrase-file wrong log verify
expect_code 6; expect_error_format

# --- a tree: each object's use logged exactly once ------------------------------------------
# 600 objects, more than two flushes' worth (one per 256 records): the records come from the
# workers' commit threads, which take the audit log in turn; a flush holds only that lock.
mkdir tree
for i in $(seq 600); do printf 'object %s\n' "$i" >"tree/f$i"; done
kh --passphrase-file pass encrypt -k backups -O tree.out tree
expect_code 0; expect_err "encrypted 600 file(s)"
kh --json --passphrase-file pass log show
expect_code 0; expect_out '"intact": true'
check; [ "$(grep -o '"object": "tree.out/f[0-9]*\.kh"' <<<"$OUT" | wc -l)" = 600 ] ||
  fail "not 600 use.encrypt records for the tree"
check; [ "$(grep -o '"object": "tree.out/f[0-9]*\.kh"' <<<"$OUT" | sort -u | wc -l)" = 600 ] ||
  fail "an object of the tree was logged twice or not at all"
# The same for rewrap, whose workers share one summary lock and take the log in turn.
kh --passphrase-file pass key rotate backups
expect_code 0
kh --passphrase-file pass rewrap tree.out
expect_code 0
kh --passphrase-file pass log show
expect_code 0
check; [ "$(grep -o 'use\.rewrap .*object=tree\.out/f[0-9]*\.kh$' <<<"$OUT" | wc -l)" = 600 ] ||
  fail "not 600 use.rewrap records for the tree"
check; [ "$(grep -o 'use\.rewrap .*object=tree\.out/f[0-9]*\.kh$' <<<"$OUT" | sort -u | wc -l)" = 600 ] ||
  fail "an object of the tree was rewrapped twice or not logged"
kh --passphrase-file pass log verify
expect_code 0

# --- tampering -------------------------------------------------------------------------------
cp ks/audit.log saved.log
cp ks/audit.head saved.head
restore() { cp saved.log ks/audit.log; cp saved.head ks/audit.head; }

# Change one character of the key.rotate entry (line 5).
line=$(grep -n '"key.rotate"' ks/audit.log | head -n 1 | cut -d: -f1)
sed -i "${line}s/\"version\":\"2\"/\"version\":\"3\"/" ks/audit.log
kh --passphrase-file pass log verify
expect_code 3; expect_error_format; expect_err "line $line: "
kh --json --passphrase-file pass log verify
expect_code 3; expect_out '"intact": false'; expect_out "\"line\": $line"
# show still prints, marks what it could not verify, and exits 3.
kh --json --passphrase-file pass log show
expect_code 3; expect_out '"verified": false'; expect_out '"verified": true'
kh --passphrase-file pass log show
expect_code 3; expect_out "(UNVERIFIED)"; expect_err "line $line: "
restore

# Delete a middle entry.
sed -i '3d' ks/audit.log
kh --passphrase-file pass log verify
expect_code 3; expect_err "line 3: "; expect_err "expected"
restore

# Cut the last entry: caught by the head.
sed -i '$d' ks/audit.log
kh --passphrase-file pass log verify
expect_code 3; expect_err "removed from the end"
# ...and nothing is appended on top of the cut log; the command's exit says so.
kh --passphrase-file pass decrypt -o data.out2 data.kh
expect_code 3; expect_err "audit log"
restore

# Cut the last entry and the head: the head's absence is reported.
sed -i '$d' ks/audit.log
rm ks/audit.head
kh --passphrase-file pass log verify
expect_code 3; expect_err "audit.head is missing"
restore

# Keystore changes that never reached the log (log and head rolled back to an older pair).
kh --passphrase-file pass key create other
expect_code 0
restore
kh --passphrase-file pass log verify
expect_code 3; expect_err "changes are missing"
kh --passphrase-file pass key list
cp ks/audit.log saved.log; cp ks/audit.head saved.head  # (the keystore moved on; keep going)

# --- a torn last line (killed in the middle of an append) ------------------------------------
rm -rf ks data.kh data.out3
setup_keystore
kh --passphrase-file pass key create backups
kh --passphrase-file pass encrypt -k backups -o data.kh data.txt
expect_code 0
head -n 1 ks/audit.log | head -c 60 >> ks/audit.log
kh --passphrase-file pass log verify
expect_code 3; expect_err "torn last line"
kh --passphrase-file pass decrypt -o data.out3 data.kh
expect_code 0
kh --json --passphrase-file pass log show
expect_code 3; expect_out '"event": "audit.torn-tail"'; expect_out '"event": "use.decrypt"'
check; [[ "$OUT" != *'"verified": false'* ]] || fail "entries after an acknowledged torn line unverified"
kh --passphrase-file pass log verify
expect_code 3; expect_err "torn line"; expect_err "recorded by entry"

finish
