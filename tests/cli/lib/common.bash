# Transcript-test helpers: run the real keyhold binary and check stdout, stderr and the exit
# code of every command. Sourced by tests/cli/*.sh, which ctest runs as
#   bash tests/cli/NAME.sh PATH/TO/keyhold SOURCE_DIR
# shellcheck shell=bash
set -u
KH_BIN=${1:?usage: $0 KEYHOLD_BINARY SOURCE_DIR}
KH_SRC=${2:?usage: $0 KEYHOLD_BINARY SOURCE_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/keyhold-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
export KEYHOLD_HOME="$T/ks"
unset KEYHOLD_PASSPHRASE XDG_DATA_HOME
umask 022
printf 'correct horse battery staple\n' > "$T/pass"
printf 'wrong passphrase\n' > "$T/wrong"
FAILS=0
CHECKS=0
OUT=""
ERR=""
CODE=0

# kh ARGS...: runs keyhold (no stdin), capturing OUT, ERR and CODE.
kh() {
  "$KH_BIN" "$@" </dev/null >"$T/.out" 2>"$T/.err"
  CODE=$?
  OUT=$(tr -d '\000' <"$T/.out")
  ERR=$(cat "$T/.err")
}
# kh_in FILE ARGS...: same, with stdin from FILE.
kh_in() {
  local in=$1; shift
  "$KH_BIN" "$@" <"$in" >"$T/.out" 2>"$T/.err"
  CODE=$?
  OUT=$(tr -d '\000' <"$T/.out")
  ERR=$(cat "$T/.err")
}

# flip_byte FILE OFFSET: inverts every bit of one byte in place. Writing a fixed value
# instead would leave the file unchanged whenever the byte already held it (1 run in 256 for
# a random byte: a tamper test that sometimes tampers with nothing).
flip_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  [ -n "$b" ] || { echo "flip_byte: $1 has no byte at offset $2" >&2; exit 1; }
  # shellcheck disable=SC2059
  printf "\\$(printf '%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

fail() {
  FAILS=$((FAILS + 1))
  printf 'FAIL [%s:%s] %s\n' "$(basename "$0")" "${BASH_LINENO[1]}" "$*"
  printf '  exit=%s\n  stdout: %s\n  stderr: %s\n' "$CODE" "${OUT:0:400}" "${ERR:0:400}"
}
check() { CHECKS=$((CHECKS + 1)); }
expect_code() { check; [ "$CODE" -eq "$1" ] || fail "expected exit $1, got $CODE"; }
expect_out() { check; [[ "$OUT" == *"$1"* ]] || fail "stdout lacks: $1"; }
expect_out_exact() { check; [ "$OUT" == "$1" ] || fail "stdout is not exactly: $1"; }
expect_err() { check; [[ "$ERR" == *"$1"* ]] || fail "stderr lacks: $1"; }
expect_no_err() { check; [ -z "$ERR" ] || fail "stderr not empty"; }
expect_empty_out() { check; [ -z "$OUT" ] || fail "stdout not empty"; }
expect_file() { check; [ -f "$1" ] || fail "missing file $1"; }
expect_no_file() { check; [ ! -e "$1" ] || fail "file should not exist: $1"; }
expect_same() { check; cmp -s "$1" "$2" || fail "files differ: $1 $2"; }
expect_true() { check; eval "$1" || fail "condition false: $1"; }
# No temp files of ours left in a directory.
expect_no_temp() { check; ! ls -a "${1:-.}" | grep -q '\.kh-tmp-' || fail "temp file left in ${1:-.}"; }
# Every error line follows the convention.
expect_error_format() {
  check
  local first
  first=$(printf '%s\n' "$ERR" | head -n 1)
  [[ "$first" == "keyhold: error: "* ]] || fail "stderr does not start with 'keyhold: error: '"
  [[ "$first" != *. ]] || fail "error message ends with a period"
}

# A keystore with the fast test KDF and a key.
setup_keystore() {
  kh --passphrase-file "$T/pass" init --insecure-fast-kdf-for-testing
  [ "$CODE" -eq 0 ] || { fail "init failed"; exit 1; }
}

finish() {
  echo "$(basename "$0"): $((CHECKS - FAILS)) passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
  exit $?
}
