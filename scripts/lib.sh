# Shared helpers for scripts/demo, scripts/test, scripts/bench, scripts/fuzz. Sourced, not run.
# shellcheck shell=bash

KEYHOLD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "keyhold: error: need root or sudo to install: $*" >&2; return 1
  fi
}

# ensure_packages PKG...: installs the Debian packages that are not installed yet.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

KEYHOLD_BUILD_DEPS=(build-essential g++ cmake make pkg-config libssl-dev libsodium-dev
  libcli11-dev nlohmann-json3-dev catch2 zlib1g-dev)

# build DIR [cmake args...]: configure once, then build incrementally.
build() {
  local dir=$1; shift
  local launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Makefile.cmake is written only by a configure that succeeded; a cache left by a failed
  # one (a missing package, say) must not stop the next run from configuring again.
  if [ ! -f "$dir/CMakeFiles/Makefile.cmake" ]; then
    rm -f "$dir/CMakeCache.txt"
    cmake -S "$KEYHOLD_ROOT" -B "$dir" "${launcher[@]}" "$@" >/dev/null
  fi
  cmake --build "$dir" -j "$(nproc)" -- --no-print-directory >/dev/null 2>"$dir.build.log" || {
    cat "$dir.build.log" >&2; return 1; }
}

# build_fuzz DIR TARGET...: the clang libFuzzer build (tests/fuzz), only the given targets.
# -O1 -g1 as libFuzzer's documentation builds (line tables for stack traces); -O2 -g took a
# third longer to compile (keystore.cpp: 26.4 s of CPU against 19.4).
KEYHOLD_FUZZ_TARGETS=(header context decrypt keystore audit)
build_fuzz() {
  local dir=$1; shift
  local launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  if [ ! -f "$dir/CMakeFiles/Makefile.cmake" ]; then
    rm -f "$dir/CMakeCache.txt"
    cmake -S "$KEYHOLD_ROOT" -B "$dir" "${launcher[@]}" -DCMAKE_CXX_COMPILER=clang++-14 \
      -DKEYHOLD_FUZZ=ON -DKEYHOLD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" >/dev/null
  fi
  cmake --build "$dir" -j "$(nproc)" --target "$@" -- --no-print-directory \
    >/dev/null 2>"$dir.build.log" || { cat "$dir.build.log" >&2; return 1; }
}
