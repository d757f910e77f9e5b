#!/usr/bin/env bash
# Fails if a C++ source file differs from what clang-format (the repo's .clang-format, Google
# based) would make of it. Reformat with: git ls-files '*.cpp' '*.h' | xargs clang-format -i
set -u
root=${1:-.}
fmt=${2:-clang-format}
cd "$root" || exit 1
bad=()
while IFS= read -r -d '' f; do
  "$fmt" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(find cli crypto keystore tests -name '*.cpp' -print0 -o -name '*.h' -print0)
if [ ${#bad[@]} -ne 0 ]; then
  echo "not clang-formatted (${#bad[@]} files):"; printf '  %s\n' "${bad[@]}"; exit 1
fi
echo "format ok: every .cpp/.h under cli crypto keystore tests matches .clang-format"
