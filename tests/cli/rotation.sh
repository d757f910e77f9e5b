#!/usr/bin/env bash
# Transcript tests: rotation at scale. rewrap/reencrypt over trees (payload untouched vs
# replaced), shards, policy refusals with exit codes, key destroy --scan, scan --json.
. "$(dirname "$0")/lib/common.bash"
P=(--passphrase-file pass)

setup_keystore
kh "${P[@]}" key create k1
expect_code 0
kh keygen -o rec.key
expect_code 0
REC=$(printf '%s' "$OUT" | grep -o 'kh1[a-z0-9]*' | head -n 1)
check; [ -n "$REC" ] || fail "no recipient from keygen"

# A tree: 12 in-file objects in subdirectories, 4 detached, and a file that is not an object.
mkdir -p plain/a/b plain/c tree
for i in $(seq 1 12); do head -c $((i * 3000)) /dev/urandom >"plain/a/b/f$i"; done
for i in 1 2 3 4; do head -c $((i * 7000)) /dev/urandom >"plain/c/d$i"; done
kh "${P[@]}" encrypt -k k1 -c tenant=acme -O tree/in plain/a
expect_code 0
mkdir -p tree/det
for i in 1 2 3 4; do
  kh "${P[@]}" encrypt -k k1 --detached -o "tree/det/d$i.kh" "plain/c/d$i"
  expect_code 0
done
echo 'not an object' >tree/readme.txt
TOTAL=16

# payload_hash FILE: SHA-256 of the payload bytes (whole file if detached, else after the header).
payload_hash() {
  if [ -f "$1.hdr" ]; then sha256sum <"$1" | cut -d' ' -f1; return; fi
  local hsize
  hsize=$("$KH_BIN" --json inspect "$1" | jq -r .objects[0].header_bytes)
  tail -c +"$((hsize + 1))" "$1" | sha256sum | cut -d' ' -f1
}
# check_plaintexts: every object decrypts to its plaintext.
check_plaintexts() {
  rm -rf dec && mkdir dec
  local f
  for f in $(seq 1 12); do
    "$KH_BIN" "${P[@]}" "$@" decrypt -o "dec/f$f" "tree/in/b/f$f.kh" 2>/dev/null
    check; cmp -s "dec/f$f" "plain/a/b/f$f" || fail "f$f does not decrypt to its plaintext"
  done
  for f in 1 2 3 4; do
    "$KH_BIN" "${P[@]}" "$@" decrypt -o "dec/d$f" "tree/det/d$f.kh" 2>/dev/null
    check; cmp -s "dec/d$f" "plain/c/d$f" || fail "d$f does not decrypt to its plaintext"
  done
}
check_plaintexts

# --- scan before rotation: keyless, unverified, stable JSON fields --------------------------
kh scan tree
expect_code 0; expect_out "17 files, 16 keyhold objects"; expect_out "UNVERIFIED"
expect_out "k1 v1  active (primary)  16 objects"; expect_out "readme.txt: not a keyhold object"
kh --json scan tree
expect_code 0
J=$OUT
jqe() { check; [ "$(printf '%s' "$J" | jq -c "$1")" = "$2" ] || fail "jq $1 != $2"; }
jqe '.scan_format' 1
jqe '.keystore' true
jqe '.verified' false
jqe '.files' 17
jqe '.objects' 16
jqe '.key_versions | length' 1
jqe '.key_versions[0] | [.key, .version, .state, .primary, .objects, .in_keystore]' \
  '["k1",1,"active",true,16,true]'
jqe '.key_versions[0] | keys' '["bytes","in_keystore","key","key_id","objects","primary","state","version"]'
jqe '.at_risk | keys' \
  '["no_keystore_stanza","no_recovery","not_on_primary","only_below_min","only_decrypt_only","only_destroyed","only_disabled","only_unknown_version"]'
jqe '.at_risk.no_recovery | length' 16
jqe '.not_keyhold | length' 1
jqe '.not_keyhold[0].path' '"tree/readme.txt"'
jqe 'keys' '["at_risk","files","key_versions","keystore","malformed","not_keyhold","object_bytes","objects","recipients","scan_format","unreadable","verified"]'
# Without a keystore, stanzas are still inventoried.
KEYHOLD_HOME="$T/none" kh --json scan tree
expect_code 0
J=$OUT
jqe '.keystore' false
jqe '.key_versions[0] | [.key, .version, .state, .in_keystore]' '["k1",1,null,false]'
# A damaged object is "malformed", not "not keyhold".
cp tree/in/b/f1.kh broken.kh
printf '\x09' | dd of=broken.kh bs=1 seek=8 conv=notrunc status=none
kh --json scan broken.kh
J=$OUT
jqe '.malformed | length' 1
jqe '.objects' 0
rm broken.kh

# --- routine rotation: rewrap keeps payload bytes, drops the old stanza ---------------------
declare -A BEFORE
for f in tree/in/b/*.kh tree/det/*.kh; do BEFORE[$f]=$(payload_hash "$f"); done
kh "${P[@]}" key rotate k1
expect_code 0
kh --json scan tree
J=$OUT
jqe '.at_risk.not_on_primary | length' 16
# destroy --scan refuses while objects depend on v1, lists them, exit 5.
kh "${P[@]}" key destroy k1 1 --yes-destroy-key-material --scan tree
expect_code 5; expect_error_format; expect_err "16 scanned object(s)"
expect_err "depends on k1 version 1: tree/det/d1.kh"; expect_err "keyhold rewrap --from k1@1"
kh --json "${P[@]}" key show k1
expect_out '"state": "active"'
kh "${P[@]}" rewrap -j 3 --dry-run tree
expect_code 0; expect_err "would rewrap 16"; expect_err "not keyhold 1"
expect_true '[ "$(payload_hash tree/in/b/f1.kh)" = "${BEFORE[tree/in/b/f1.kh]}" ]'
kh --json scan tree
J=$OUT
jqe '.at_risk.not_on_primary | length' 16
kh "${P[@]}" rewrap -j 3 tree
expect_code 0; expect_err "rewrapped 16"; expect_err "failed 0 of 17"; expect_empty_out
expect_no_temp tree/in/b; expect_no_temp tree/det
for f in "${!BEFORE[@]}"; do
  check; [ "$(payload_hash "$f")" = "${BEFORE[$f]}" ] || fail "payload of $f changed"
done
kh inspect tree/det/d2.kh
expect_out "k1 v2"; check; [[ "$OUT" != *"k1 v1"* ]] || fail "old stanza kept"
# Idempotent: a rerun changes nothing.
kh "${P[@]}" --json rewrap -j 2 tree
expect_code 0
J=$OUT
jqe '[.done, .skipped, .failed, .skipped_by_reason]' '[0,17,0,{"not-keyhold":1,"up-to-date":16}]'
# Now v1 can go; everything still decrypts (only with v2).
kh "${P[@]}" key destroy k1 1 --yes-destroy-key-material --scan tree
expect_code 0; expect_err "destroyed k1 version 1"
check_plaintexts

# --- policy enforcement on decrypt: each refused state, exit 5, version named, hint ---------
kh "${P[@]}" key create pk
kh "${P[@]}" encrypt -k pk -o pol.kh plain/c/d1
kh "${P[@]}" key rotate pk
kh "${P[@]}" key disable pk 1
kh "${P[@]}" decrypt -o pol.out pol.kh
expect_code 5; expect_error_format; expect_err "pk version 1 is disabled"; expect_err "hint: enable it"
expect_no_file pol.out
kh "${P[@]}" key enable pk 1
kh "${P[@]}" key policy pk --min-decryption-version 2
expect_code 0
kh "${P[@]}" decrypt -o pol.out pol.kh
expect_code 5; expect_err "below min_decryption_version 2"; expect_err "hint: rewrap"
# scan sees it (unverified) as below min; a rewrap is still refused for that object, exit 9.
kh --json scan pol.kh
J=$OUT
jqe '.at_risk.only_below_min' '["pol.kh"]'
kh "${P[@]}" rewrap pol.kh
expect_code 9; expect_err "below min_decryption_version"; expect_err "failed 1 of 1"
kh "${P[@]}" key policy pk --min-decryption-version 1
kh "${P[@]}" key retire pk 1
kh --json scan pol.kh
J=$OUT
jqe '.at_risk.only_decrypt_only' '["pol.kh"]'
kh "${P[@]}" decrypt -o pol.out pol.kh
expect_code 0
rm -f pol.out
# destroy --force: loud, and the object is then refused as destroyed.
kh "${P[@]}" key destroy pk 1 --yes-destroy-key-material --scan pol.kh
expect_code 5; expect_err "depends on pk version 1: pol.kh"
kh "${P[@]}" key destroy pk 1 --yes-destroy-key-material --force
expect_code 2; expect_err "--force only makes sense with --scan"
kh "${P[@]}" key destroy pk 1 --yes-destroy-key-material --scan pol.kh --force
expect_code 0; expect_err "warning: --force: destroying pk version 1 although 1 scanned object(s)"
kh "${P[@]}" decrypt -o pol.out pol.kh
expect_code 5; expect_err "pk version 1 is destroyed"; expect_no_file pol.out
kh --json scan pol.kh
J=$OUT
jqe '.at_risk.only_destroyed' '["pol.kh"]'
kh "${P[@]}" rewrap pol.kh
expect_code 9; expect_err "destroyed"
rm pol.kh

# --- destroy --scan: an object also wrapped to another usable version does not depend -------
kh "${P[@]}" key create k2
kh "${P[@]}" encrypt -k k1 -k k2 -o two.kh plain/c/d2
kh "${P[@]}" key rotate k2
kh "${P[@]}" key destroy k2 1 --yes-destroy-key-material --scan two.kh
expect_code 0
# ...but a recipient stanza is not a way out (whoever holds it may be offline).
kh "${P[@]}" encrypt -k k2 -r "$REC" -o rec.kh plain/c/d3
kh "${P[@]}" key rotate k2
kh "${P[@]}" key destroy k2 2 --yes-destroy-key-material --scan rec.kh
expect_code 5; expect_err "depends on k2 version 2: rec.kh"

# --- recovery recipients in scan ------------------------------------------------------------
kh --json scan rec.kh
J=$OUT
jqe '.at_risk.no_recovery' '["rec.kh"]'
kh "${P[@]}" recipient add escrow "$REC"
kh --json scan rec.kh
J=$OUT
jqe '.at_risk.no_recovery' '[]'
jqe '.recipients[0] | [.name, .recovery, .objects]' '["escrow",true,1]'

# --- shards: 0..N-1 cover every object exactly once, by the documented hash ------------------
# shard_of REL N: first 8 bytes of SHA-256(REL), big-endian, mod N (in two 32-bit halves).
shard_of() {
  local h hi lo
  h=$(printf '%s' "$1" | sha256sum | cut -c1-16)
  hi=$((16#${h:0:8})); lo=$((16#${h:8:8}))
  echo $(((hi % $2 * (4294967296 % $2) + lo % $2) % $2))
}
for n in 1 3 7; do
  kh "${P[@]}" key rotate k1
  sum_objects=0; sum_done=0
  for ((i = 0; i < n; i++)); do
    expected=0
    while IFS= read -r rel; do
      [ "$(shard_of "$rel" "$n")" -eq "$i" ] && expected=$((expected + 1))
    done < <(cd tree && find . -type f ! -name '*.hdr' | sed 's|^\./||')
    kh "${P[@]}" --json rewrap -j 2 --shard "$i/$n" tree
    expect_code 0
    J=$OUT
    jqe '.shard' "\"$i/$n\""
    jqe '.objects' "$expected"
    sum_objects=$((sum_objects + $(printf '%s' "$OUT" | jq .objects)))
    sum_done=$((sum_done + $(printf '%s' "$OUT" | jq .done)))
  done
  check; [ "$sum_objects" -eq $((TOTAL + 1)) ] || fail "shards of $n cover $sum_objects files"
  check; [ "$sum_done" -eq "$TOTAL" ] || fail "shards of $n rewrapped $sum_done objects"
  kh --json scan tree
  J=$OUT
  jqe '.at_risk.not_on_primary | length' 0
done
# The same split over a manifest (paths hashed as written, one per line).
(cd tree && find . -name '*.kh' | sed 's|^\./||' | sort) >manifest
kh "${P[@]}" key rotate k1
sum=0
for i in 0 1 2; do
  (cd tree && "$KH_BIN" --passphrase-file "$T/pass" --json rewrap --shard "$i/3" --manifest ../manifest) >m.json
  check; [ "$(jq .failed m.json)" -eq 0 ] || fail "manifest shard $i failed"
  sum=$((sum + $(jq .done m.json)))
done
check; [ "$sum" -eq "$TOTAL" ] || fail "manifest shards rewrapped $sum"
kh "${P[@]}" rewrap --shard 3/3 tree
expect_code 2; expect_err "--shard expects I/N"
kh "${P[@]}" rewrap --shard 1/0 tree
expect_code 2
kh "${P[@]}" rewrap
expect_code 2; expect_err "no objects given"

# --- --from selects, --to moves objects to another key ----------------------------------------
kh "${P[@]}" key create k3
kh "${P[@]}" --json rewrap --from k3 tree
expect_code 0
J=$OUT
jqe '[.done, .skipped_by_reason]' '[0,{"not-keyhold":1,"not-selected":16}]'
kh "${P[@]}" rewrap --from k1@999 tree/det
expect_code 0; expect_err "rewrapped 0, not selected 4"
kh "${P[@]}" rewrap --from 'k1@x' tree/det
expect_code 2; expect_err "--from expects KEY or KEY@VERSION"
kh "${P[@]}" rewrap --to k3 --from k1 tree/det
expect_code 0; expect_err "rewrapped 4"
kh inspect tree/det/d1.kh
expect_out "k3 v1"; check; [[ "$OUT" != *"k1 v"* ]] || fail "--to kept the k1 stanza"
kh "${P[@]}" rewrap --to nosuchkey tree/det
expect_code 1; expect_err "nosuchkey"
check_plaintexts

# --- reencrypt: new DEK and payload, same plaintext, old DEK useless -------------------------
cp tree/in/b/f5.kh old_f5.kh
cp tree/det/d3.kh old_d3.payload; cp tree/det/d3.kh.hdr old_d3.hdr
old_id=$("$KH_BIN" --json inspect tree/in/b/f5.kh | jq -r .objects[0].object_id)
kh "${P[@]}" reencrypt -j 2 tree
expect_code 0; expect_err "reencrypted 16"; expect_err "not keyhold 1"
expect_no_temp tree/in/b; expect_no_temp tree/det
expect_true '[ ! -e tree/det/d3.kh.kh-tmp-reencrypt-old ]'
new_id=$("$KH_BIN" --json inspect tree/in/b/f5.kh | jq -r .objects[0].object_id)
check; [ "$old_id" != "$new_id" ] || fail "reencrypt kept the object id"
check; [ "$(payload_hash tree/in/b/f5.kh)" != "$(payload_hash old_f5.kh)" ] || fail "payload unchanged"
check; ! cmp -s tree/det/d3.kh old_d3.payload || fail "detached payload unchanged"
kh inspect tree/in/b/f5.kh
expect_out "tenant=acme"
check_plaintexts
# The old header (old DEK) does not open the new payload.
hsize=$("$KH_BIN" --json inspect old_f5.kh | jq -r .objects[0].header_bytes)
nsize=$("$KH_BIN" --json inspect tree/in/b/f5.kh | jq -r .objects[0].header_bytes)
{ head -c "$hsize" old_f5.kh; tail -c +"$((nsize + 1))" tree/in/b/f5.kh; } >spliced.kh
kh "${P[@]}" decrypt -o spliced.out spliced.kh
expect_code 3; expect_error_format; expect_no_file spliced.out
cp tree/det/d3.kh spl.kh; cp old_d3.hdr spl.kh.hdr
kh "${P[@]}" decrypt -o spl.out spl.kh
expect_code 3; expect_no_file spl.out
# The old object still opens with its old header (nothing else changed about it).
kh "${P[@]}" decrypt -o old.out old_f5.kh
expect_code 0; expect_same old.out plain/a/b/f5
rm -f old.out spliced.kh spl.kh spl.kh.hdr

# reencrypt refuses to drop a recipient it cannot re-create, and leaves the object alone.
kh keygen -o other.key
OTHER=$(printf '%s' "$OUT" | grep -o 'kh1[a-z0-9]*' | head -n 1)
kh "${P[@]}" encrypt -k k1 -r "$OTHER" -o stranger.kh plain/c/d4
cp stranger.kh stranger.before
kh "${P[@]}" reencrypt stranger.kh
expect_code 9; expect_err "has no known public key"; expect_err "failed 1 of 1"
expect_same stranger.kh stranger.before
kh "${P[@]}" reencrypt --add-recipient "$OTHER" stranger.kh
expect_code 0; expect_err "reencrypted 1"
kh -i other.key decrypt -o s.out stranger.kh
expect_code 0; expect_same s.out plain/c/d4
kh "${P[@]}" reencrypt --remove-recipient "$OTHER" stranger.kh
expect_code 0
KEYHOLD_HOME="$T/none" kh -i other.key decrypt -o s2.out stranger.kh
expect_code 4; expect_no_file s2.out
# --skip-newer-than resumes a job: objects written after the stamp are left alone.
touch stamp
sleep 0.05
kh "${P[@]}" reencrypt --skip-newer-than stamp tree/det
expect_code 0; expect_err "reencrypted 4"
kh "${P[@]}" reencrypt --skip-newer-than stamp tree/det
expect_code 0; expect_err "reencrypted 0, newer than stamp 4"
kh "${P[@]}" reencrypt --skip-newer-than nostamp tree/det
expect_code 1; expect_err "touch FILE"

# Recovery of a detached reencrypt killed between its two renames: new payload, old header,
# old payload under the backup name. The next run rolls back, then reencrypts.
cp tree/det/d4.kh d4.payload; cp tree/det/d4.kh.hdr d4.hdr
kh "${P[@]}" reencrypt tree/det/d4.kh
expect_code 0
ln d4.payload tree/det/d4.kh.kh-tmp-reencrypt-old
cp d4.hdr tree/det/d4.kh.hdr
# Until then the object still decrypts, from the old payload, with a warning.
kh "${P[@]}" decrypt -o x.out tree/det/d4.kh
expect_code 0; expect_same x.out plain/c/d4; expect_err "interrupted reencrypt"
expect_err "d4.kh.kh-tmp-reencrypt-old"
rm -f x.out
# A mismatch without a matching backup is still an integrity failure.
mv tree/det/d4.kh.kh-tmp-reencrypt-old d4.bak
kh "${P[@]}" decrypt -o x.out tree/det/d4.kh
expect_code 3; expect_no_file x.out
mv d4.bak tree/det/d4.kh.kh-tmp-reencrypt-old
kh "${P[@]}" reencrypt tree/det/d4.kh
expect_code 0; expect_err "reencrypted 1"
expect_no_file tree/det/d4.kh.kh-tmp-reencrypt-old
# rewrap settles an interrupted reencrypt too (rolls back), instead of failing on the pair.
cp tree/det/d4.kh d4.payload2; cp tree/det/d4.kh.hdr d4.hdr2
kh "${P[@]}" reencrypt tree/det/d4.kh
expect_code 0
ln d4.payload2 tree/det/d4.kh.kh-tmp-reencrypt-old
cp d4.hdr2 tree/det/d4.kh.hdr
kh "${P[@]}" rewrap tree/det/d4.kh
expect_code 0; expect_err "failed 0 of 1"
expect_no_file tree/det/d4.kh.kh-tmp-reencrypt-old
expect_same tree/det/d4.kh d4.payload2
kh "${P[@]}" decrypt -o d4.out2 tree/det/d4.kh
expect_code 0; expect_same d4.out2 plain/c/d4; expect_true '[[ "$ERR" != *interrupted* ]]'
kh "${P[@]}" decrypt -o d4.out tree/det/d4.kh
expect_code 0; expect_same d4.out plain/c/d4
# Killed after both renames: only the backup is left; the next run just removes it.
cp tree/det/d4.kh d4.cur; cp tree/det/d4.kh.hdr d4.curhdr
ln d4.payload tree/det/d4.kh.kh-tmp-reencrypt-old
kh "${P[@]}" reencrypt tree/det/d4.kh
expect_code 0
expect_no_file tree/det/d4.kh.kh-tmp-reencrypt-old
expect_same tree/det/d4.kh d4.cur
expect_same tree/det/d4.kh.hdr d4.curhdr
# The walker never treats the backup as an object.
ln d4.payload tree/det/d1.kh.kh-tmp-reencrypt-old 2>/dev/null || true
kh --json scan tree/det
J=$OUT
jqe '.files' 4
rm -f tree/det/d1.kh.kh-tmp-reencrypt-old

finish
