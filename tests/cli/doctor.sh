#!/usr/bin/env bash
# Transcript tests for `keyhold doctor`: every check is made to fire and kept quiet, the
# exit code follows --fail-on, and the JSON form has its documented fields.
. "$(dirname "$0")/lib/common.bash"

# The environment checks read the invoking shell's limits and /proc/swaps: start from a
# compliant environment and change one thing at a time.
ulimit -Sc 0
printf 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n' > noswap
cp noswap diskswap
printf '/dev/sda2                               partition\t8388604\t\t0\t\t-2\n' >> diskswap
cp noswap zramswap
printf '/dev/zram0                              partition\t4194300\t\t0\t\t100\n' >> zramswap
SW="--swaps-file-for-testing $T/noswap"
NOW=$(date +%s)
DAY=86400

has() { check; [[ "$OUT" == *"$1"* ]] || fail "doctor did not report: $1"; }
hasnt() { check; [[ "$OUT" != *"$1"* ]] || fail "doctor reported: $1"; }
# dr ARGS...: doctor without unlocking (compliant environment), then dri: unlocked through
# the recovery identity (fast, no Argon2id).
dr() { kh doctor $SW "$@"; }
dri() { kh -i "$T/recovery.key" doctor $SW "$@"; }
# Runs keyhold without CAP_IPC_LOCK / CAP_DAC_* when root (they would mask the checks).
kh_nocap() {
  local caps=$1; shift
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --inh-caps="$caps" --bounding-set="$caps" "$KH_BIN" "$@" </dev/null >"$T/.out" 2>"$T/.err"
  else
    "$KH_BIN" "$@" </dev/null >"$T/.out" 2>"$T/.err"
  fi
  CODE=$?
  OUT=$(cat "$T/.out")
  ERR=$(cat "$T/.err")
}

# --- usage and missing keystore --------------------------------------------------------------
kh doctor
expect_code 1; expect_error_format; expect_err "no keystore at $T/ks"; expect_err "keyhold: hint: "
kh doctor --fail-on severe
expect_code 2; expect_error_format
kh --help
expect_code 0; expect_out "doctor"

# --- slots: KH-SL-001 (weak KDF), KH-SL-002 (no recovery), KH-SL-003 (one slot) ---------------
setup_keystore
dr
expect_code 0  # default --fail-on high: nothing high in a fresh (weak-KDF) keystore
has "KH-SL-001"; has "Argon2id parameters below the floor"; has "t=1 m=8192 KiB"
has "KH-SL-002"; has "no recovery slot"
has "KH-SL-003"; has "only one unlock slot"
has "ID           SEVERITY  FINDING"
has "UNVERIFIED: read without unlocking"
has "4 findings: 0 high, 2 medium, 1 low, 1 info"
expect_no_err
dr --fail-on medium
expect_code 10
dr --fail-on info
expect_code 10
WEAK=$(kh --json --passphrase-file pass slot list >/dev/null; jq -r '.slots[0].id' <<<"$OUT")
R=$("$KH_BIN" keygen -o recovery.key 2>/dev/null)
kh --passphrase-file pass slot add-recipient "$R"
expect_code 0
dr
hasnt "KH-SL-002"; hasnt "KH-SL-003"; has "KH-SL-001"
kh -i recovery.key slot remove "$WEAK"
expect_code 0
dr
has "KH-SL-003"; hasnt "KH-SL-001"; hasnt "KH-SL-002"
# A calibrated passphrase slot (no test flag) meets the floor.
kh -i recovery.key slot add-passphrase --new-passphrase-file pass
expect_code 0
dr
hasnt "KH-SL-001"; hasnt "KH-SL-002"; hasnt "KH-SL-003"

# --- audit log: KH-AUD-003 (locked), KH-AUD-001 (missing), KH-AUD-002 (broken chain) --------
dr
has "KH-AUD-003"; has "audit log not verified (keystore locked)"; hasnt "KH-AUD-001"
dri
expect_code 0; hasnt "KH-AUD-003"; hasnt "KH-AUD-002"; has "(verified: unlocked)"
expect_no_err
mkdir aside && mv ks/audit.log ks/audit.head aside/
dr
has "KH-AUD-001"; has "no audit log"; expect_code 10
dri
has "KH-AUD-001"; expect_code 10
mv aside/audit.log aside/audit.head ks/
cp ks/audit.log audit.orig
python3 - "$T/ks/audit.log" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
i = b.index(b'"event":"') + 10  # inside the first entry's event name
b[i] ^= 0x01
open(p, 'wb').write(bytes(b))
EOF
dri
has "KH-AUD-002"; has "audit log verification failed"; expect_code 10
dr  # locked: the chain cannot be checked, only its presence
hasnt "KH-AUD-002"; has "KH-AUD-003"
cp audit.orig ks/audit.log
dri
hasnt "KH-AUD-002"; expect_code 0

# --- keys: KH-KEY-001..006 ---------------------------------------------------------------------
kh -i recovery.key key create k1
kh -i recovery.key key create k2 --rotation-days 30
expect_code 0
dr
has "key k1 has no rotation policy"; hasnt "key k2 has no rotation policy"
hasnt "KH-KEY-001"
dr --now-for-testing $((NOW + 40 * DAY))
has "KH-KEY-001"; has "key k2 is overdue for rotation"; has "rotation_days is 30"
dr --now-for-testing $((NOW + 20 * DAY))
hasnt "KH-KEY-001"
kh -i recovery.key key policy k1 --rotation-days 90
dr
hasnt "KH-KEY-002"
kh -i recovery.key key rotate k2
kh -i recovery.key key rotate k2
expect_code 0
dr
has "KH-KEY-003"; has "key k2 has 3 active versions"; hasnt "KH-KEY-005"
dr --now-for-testing $((NOW + 40 * DAY))
has "KH-KEY-004"; has "key k2 has active non-primary versions older"
dr --now-for-testing $((NOW + 20 * DAY))
hasnt "KH-KEY-004"
kh -i recovery.key key retire k2 1
dr
hasnt "KH-KEY-003"; hasnt "KH-KEY-005"
kh -i recovery.key key retire k2 2
dr --now-for-testing $((NOW + 40 * DAY))
hasnt "KH-KEY-004"
has "KH-KEY-005"; has "key k2: min_decryption_version not raised after rotation"
has "--min-decryption-version 3"
kh -i recovery.key key policy k2 --min-decryption-version 3
dr
hasnt "KH-KEY-005"
kh -i recovery.key key create k3 --rotation-days 30
kh -i recovery.key key retire k3 1
dr
has "KH-KEY-006"; has "key k3 has no primary version"
kh -i recovery.key key rotate k3
kh -i recovery.key key policy k3 --min-decryption-version 2
dr
hasnt "KH-KEY-006"; hasnt "KH-KEY-005"

# --- keystore location: KH-KS-001..008 ------------------------------------------------------
dr
hasnt "KH-KS-"  # a private keystore under private directories
chmod 750 ks
dr
has "KH-KS-001"; has "ks is accessible by other users"; has "mode 0750"
has "KH-KS-007"  # Peek refuses it too, so its contents are not checked
expect_code 10
chmod 700 ks
chmod 640 ks/keystore.json
dr
has "KH-KS-003"; has "keystore.json is accessible by other users"; expect_code 10
chmod 600 ks/keystore.json
ln -s /etc/hostname ks/planted
dr
has "KH-KS-003"; has "planted is a symbolic link"
rm ks/planted
dr
hasnt "KH-KS-003"; hasnt "KH-KS-001"
if [ "$(id -u)" -eq 0 ]; then
  chown 65534 ks/keystore.json.bak
  dr
  has "KH-KS-002"; has "keystore.json.bak is owned by another user"; has "owner uid 65534"
  chown 0 ks/keystore.json.bak
  dr
  hasnt "KH-KS-002"
  ln -s "$T/ks" kslink && chown -h 65534 kslink
  dr --keystore "$T/kslink"
  has "KH-KS-002"; has "kslink is a symlink owned by another user"
  chown -h 0 kslink
  dr --keystore "$T/kslink"
  hasnt "KH-KS-002"; hasnt "KH-KS-007"
else
  chmod 700 ks  # cannot chown as a user: the quiet branch only
  dr
  hasnt "KH-KS-002"
fi
mkdir -p shared && chmod 777 shared
kh --keystore "$T/shared/ks" --passphrase-file pass init --insecure-fast-kdf-for-testing
expect_code 0
dr --keystore "$T/shared/ks"
has "KH-KS-004"; has "parent directory $T/shared is writable by every user"; expect_code 10
chmod 1777 shared
dr --keystore "$T/shared/ks"
hasnt "KH-KS-004"; hasnt "KH-KS-005"
chmod 775 shared
dr --keystore "$T/shared/ks"
has "KH-KS-005"; has "is writable by its group"; hasnt "KH-KS-004"
chmod 755 shared
dr --keystore "$T/shared/ks"
hasnt "KH-KS-005"
dr --fs-type-for-testing 26985  # 0x6969, NFS
has "KH-KS-006"; has "(NFS)"; has "statfs f_type 0x6969"
dr --fs-type-for-testing 1702057286  # 0x65735546, FUSE
has "KH-KS-006"; has "(FUSE)"
dr --fs-type-for-testing 61267  # 0xef53, ext4
hasnt "KH-KS-006"
cp ks/keystore.json keystore.good
printf '{"not": "a keystore"' > ks/keystore.json
dr
has "KH-KS-007"; has "keystore could not be read"; expect_code 10
dri
has "KH-KS-007"; has "keystore failed to open and verify"; expect_code 10
cp keystore.good ks/keystore.json
dri
hasnt "KH-KS-007"

# --- objects: KH-OBJ-001..012 -----------------------------------------------------------------
kh -i recovery.key recipient add recovery "$R"
head -c 5000 /dev/urandom > plain.bin
enc() { kh -i "$T/recovery.key" encrypt -r recovery -c bucket=b "$@" plain.bin; }
mkdir good && enc -k k2 -o good/o.kh
expect_code 0
dr good
expect_code 0; has "objects: 1 files checked"; hasnt "KH-OBJ-"
kh -i recovery.key encrypt -k k2 -o norec.kh plain.bin
dr norec.kh
has "KH-OBJ-007"; has "objects with no recovery recipient"; has "1 object: norec.kh"
kh -i recovery.key encrypt -k k2 -o noctx.kh -r recovery plain.bin
dr noctx.kh
hasnt "KH-OBJ-011"; hasnt "KH-OBJ-007"
dr --require-context noctx.kh
has "KH-OBJ-011"; has "empty encryption context"; has "1 object: noctx.kh"
dr --require-context good
hasnt "KH-OBJ-011"
# Retired version (004) and not on the primary (012), then rewrapped.
kh -i recovery.key key create k4 --rotation-days 30
enc -k k4 -o o4.kh
kh -i recovery.key key rotate k4
dr o4.kh
has "KH-OBJ-012"; hasnt "KH-OBJ-004"
kh -i recovery.key key retire k4 1
dr o4.kh
has "KH-OBJ-004"; has "retired (decrypt-only)"; expect_code 0
dr --fail-on medium o4.kh
expect_code 10
kh -i recovery.key rewrap o4.kh
expect_code 0
dr o4.kh
hasnt "KH-OBJ-004"; hasnt "KH-OBJ-012"
# Disabled (002).
kh -i recovery.key key create k5 --rotation-days 30
enc -k k5 -o o5.kh
kh -i recovery.key key disable k5 1
dr o5.kh
has "KH-OBJ-002"; has "only to disabled key versions"; expect_code 10
kh -i recovery.key key enable k5 1
dr o5.kh
hasnt "KH-OBJ-002"
# Below min_decryption_version (003).
kh -i recovery.key key create k6 --rotation-days 30
enc -k k6 -o o6.kh
kh -i recovery.key key rotate k6
kh -i recovery.key key policy k6 --min-decryption-version 2
dr o6.kh
has "KH-OBJ-003"; has "below min_decryption_version"; expect_code 10
kh -i recovery.key key policy k6 --min-decryption-version 1
dr o6.kh
hasnt "KH-OBJ-003"
# Destroyed (001).
kh -i recovery.key key create k7 --rotation-days 30
enc -k k7 -o o7.kh
kh -i recovery.key key rotate k7
kh -i recovery.key key destroy k7 1 --yes-destroy-key-material
expect_code 0
dr o7.kh
has "KH-OBJ-001"; has "only to destroyed key versions"; expect_code 10
dr good
hasnt "KH-OBJ-001"
# A version this copy of the keystore does not have (005).
cp -a ks ks-old
kh -i recovery.key key rotate k2
enc -k k2 -o o8.kh
dr --keystore "$T/ks-old" o8.kh
has "KH-OBJ-005"; has "versions this keystore does not have"; expect_code 10
dr o8.kh
hasnt "KH-OBJ-005"
# No stanza for this keystore (006).
kh encrypt -r "$R" -o pubonly.kh plain.bin
dr pubonly.kh
has "KH-OBJ-006"; has "no stanza for a key of this keystore"; hasnt "KH-OBJ-007"
# Malformed (008) and not keyhold (009).
mkdir bad && cp good/o.kh bad/trunc.kh && truncate -s 40 bad/trunc.kh
printf 'just notes\n' > bad/notes.txt
dr bad
has "KH-OBJ-008"; has "bad/trunc.kh"; has "KH-OBJ-009"; has "bad/notes.txt"; expect_code 10
dr good
hasnt "KH-OBJ-008"; hasnt "KH-OBJ-009"
# Unreadable (010): root reads anything, so drop its DAC override for this run.
mkdir locked && cp good/o.kh locked/o.kh && chmod 000 locked/o.kh
kh_nocap -dac_override,-dac_read_search doctor $SW locked
has "KH-OBJ-010"; has "could not be read"
chmod 600 locked/o.kh
kh_nocap -dac_override,-dac_read_search doctor $SW locked
hasnt "KH-OBJ-010"
# No keystore at all (KH-KS-008): objects only; every object lacks a known recovery.
dr --keystore "$T/none" good
has "KH-KS-008"; has "keystore: none (object checks only)"; expect_code 0
dr good
hasnt "KH-KS-008"

# --- environment: KH-ENV-001..004 ------------------------------------------------------------
# Soft limits only (-S), so they can be raised again; a hard limit of 0 leaves no way to
# make the check fire.
if [ "$(ulimit -Hc)" != 0 ]; then
  ulimit -Sc "$(ulimit -Hc)"
  dr
  has "KH-ENV-001"; has "core dumps are enabled for this shell"; has "ulimit -c of the invoking"
  ulimit -Sc 0
else
  echo "note: hard core limit is 0 here; KH-ENV-001 firing not testable"
fi
dr
hasnt "KH-ENV-001"
MEMLOCK_HARD=$(ulimit -Hl)
ulimit -Sl 0
kh_nocap -ipc_lock doctor $SW
has "KH-ENV-002"; has "memory locking is not available"
if [ "$MEMLOCK_HARD" = unlimited ] || [ "$MEMLOCK_HARD" -ge 64 ]; then
  ulimit -Sl "$MEMLOCK_HARD"
  kh_nocap -ipc_lock doctor $SW
  hasnt "KH-ENV-002"
fi
if [ "$(id -u)" -eq 0 ]; then
  ulimit -Sl 0
  kh doctor $SW  # root keeps CAP_IPC_LOCK: no limit applies
  hasnt "KH-ENV-002"
fi
ulimit -Sl "$MEMLOCK_HARD"
kh doctor --swaps-file-for-testing "$T/diskswap"
has "KH-ENV-003"; has "swap on disk is enabled"; has "/dev/sda2"
kh doctor --swaps-file-for-testing "$T/zramswap"
hasnt "KH-ENV-003"
dr
hasnt "KH-ENV-003"; hasnt "KH-ENV-004"
kh doctor --swaps-file-for-testing "$T/nonexistent"
has "KH-ENV-004"; has "swap configuration not determined"

# --- JSON and quiet ---------------------------------------------------------------------------
dr --json --fail-on low o4.kh norec.kh
expect_code 10
check
jq -e '(.findings | type == "array") and (.verified == false) and (.keystore | type == "string")
       and (.summary.fail_on == "low") and (.summary.failed == true)
       and (.summary.total == (.findings | length))
       and ([.findings[] | has("id") and has("severity") and has("title") and has("evidence")
             and has("remediation")] | all)
       and ([.findings[] | select(.id == "KH-OBJ-007") | .objects] == [["norec.kh"]])' \
  <<<"$OUT" >/dev/null || fail "doctor JSON lacks documented fields"
dri --json
expect_code 0
check; jq -e '.verified == true and .summary.failed == false' <<<"$OUT" >/dev/null || fail "verified JSON"
dr -q --fail-on info
expect_code 10; expect_empty_out

finish
