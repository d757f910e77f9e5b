#!/usr/bin/env bash
# Fails if a lower module includes a higher one: arrows point down only,
# cli -> keystore -> crypto. Also checks that public headers name no third-party type.
set -u
root=${1:-.}
fail=0
bad=$(grep -rnE '#include\s*[<"]keyhold/(keystore|cli)/' "$root/crypto" || true)
if [ -n "$bad" ]; then echo "crypto/ includes keystore/ or cli/:"; echo "$bad"; fail=1; fi
bad=$(grep -rnE '#include\s*[<"](keyhold/cli/|cli/|commands/)' "$root/keystore" || true)
if [ -n "$bad" ]; then echo "keystore/ includes cli/:"; echo "$bad"; fail=1; fi
bad=$(grep -rnE '#include\s*[<"](openssl/|sodium|nlohmann/|CLI/)' \
      "$root/crypto/include" "$root/keystore/include" || true)
if [ -n "$bad" ]; then echo "public header includes a third-party header:"; echo "$bad"; fail=1; fi
if [ $fail -eq 0 ]; then echo "layering ok: crypto <- keystore <- cli, public headers clean"; fi
exit $fail
