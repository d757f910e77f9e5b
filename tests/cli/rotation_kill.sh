#!/usr/bin/env bash
# Crash safety of bulk jobs: `keyhold rewrap -j 2` and `keyhold reencrypt -j 2` over a tree of
# 50 objects (half in-file, half detached) are SIGKILLed after a random 0-50 ms, again and
# again. After every few kills every object must still decrypt to its plaintext (with the old
# or the new header), and a final run must complete the job.
. "$(dirname "$0")/lib/common.bash"
P=(--passphrase-file pass)
REWRAP_KILLS=${KH_REWRAP_KILLS:-100}
REENCRYPT_KILLS=${KH_REENCRYPT_KILLS:-40}

setup_keystore
kh "${P[@]}" key create k1
mkdir -p plain tree
for i in $(seq 1 50); do head -c $((1000 + i * 700)) /dev/urandom >"plain/o$i"; done
for i in $(seq 1 25); do "$KH_BIN" "${P[@]}" encrypt -k k1 -o "tree/o$i.kh" "plain/o$i" 2>/dev/null; done
for i in $(seq 26 50); do
  "$KH_BIN" "${P[@]}" encrypt -k k1 --detached -o "tree/o$i.kh" "plain/o$i" 2>/dev/null
done

verify_all() {
  rm -rf out
  "$KH_BIN" "${P[@]}" decrypt -O out tree >/dev/null 2>"$T/.verr"
  local rc=$? bad=0 i
  for i in $(seq 1 50); do cmp -s "out/o$i" "plain/o$i" || bad=$((bad + 1)); done
  check
  [ "$rc" -eq 0 ] && [ "$bad" -eq 0 ] ||
    fail "$1: $bad objects do not decrypt to their plaintext (decrypt exit $rc: $(head -c 300 "$T/.verr"))"
}
verify_all "before"

# kill_after CMD...: runs keyhold in the background and SIGKILLs it after 0-50 ms.
kill_after() {
  "$KH_BIN" "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep "0.0$(printf '%02d' $((RANDOM % 51)))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

for ((k = 1; k <= REWRAP_KILLS; k++)); do
  # A new version every few kills keeps the job non-trivial.
  if ((k % 5 == 1)); then "$KH_BIN" "${P[@]}" key rotate k1 >/dev/null 2>&1; fi
  kill_after "${P[@]}" rewrap -j 2 tree
  if ((k % 20 == 0)); then verify_all "after $k rewrap kills"; fi
done
# A rerun completes the job, and then everything is up to date.
kh "${P[@]}" --json rewrap -j 2 tree
expect_code 0
check; [ "$(printf '%s' "$OUT" | jq '.done + .skipped')" -eq 50 ] || fail "rerun did not cover 50"
kh "${P[@]}" --json rewrap -j 2 tree
expect_code 0
check; [ "$(printf '%s' "$OUT" | jq '.skipped_by_reason["up-to-date"]')" -eq 50 ] || fail "not all up to date"
kh --json scan tree
check; [ "$(printf '%s' "$OUT" | jq '.at_risk.not_on_primary | length')" -eq 0 ] || fail "stale stanzas"
verify_all "after the rewrap rerun"

for ((k = 1; k <= REENCRYPT_KILLS; k++)); do
  kill_after "${P[@]}" reencrypt -j 2 tree
  if ((k % 10 == 0)); then verify_all "after $k reencrypt kills"; fi
done
kh "${P[@]}" reencrypt -j 2 tree
expect_code 0; expect_err "reencrypted 50"
check; ! ls tree | grep -q 'kh-tmp-reencrypt-old' || fail "reencrypt backups left behind"
verify_all "after the reencrypt rerun"
finish
