#!/usr/bin/env bash
# Installs what is missing, builds cronvisor with its tests, and runs every test with ctest.
#   scripts/test.sh              the suite, in build/
#   scripts/test.sh --sanitize   the suite built with ASan+UBSan, in build-asan/
#   scripts/test.sh --fuzz SECS  builds the libFuzzer targets with clang and runs each for SECS
#   scripts/test.sh --format     fails when a C file differs from .clang-format, or a public
#                                function is called from no other file (scripts/unused-public.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-plain}"
bash scripts/install-deps.sh --test
jobs="$(nproc)"

case "$mode" in
plain)
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCV_TESTS=ON
  cmake --build build -j"$jobs"
  (cd build && ctest --output-on-failure -j"$jobs")
  ;;
--sanitize)
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCV_SANITIZE=ON
  cmake --build build-asan -j"$jobs"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  (cd build-asan && ctest --output-on-failure -j"$jobs")
  ;;
--fuzz)
  secs="${2:-30}"
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DCV_FUZZ=ON -DCV_TESTS=OFF
  cmake --build build-fuzz -j"$jobs"
  shopt -s nullglob
  for src in tests/fuzz/*_fuzz.c; do
    name="$(basename "$src" .c)"
    corpus="tests/fuzz/corpus/${name%%_*}"
    work="$(mktemp -d)"
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    echo "fuzz: $name for ${secs}s"
    ./build-fuzz/tests/fuzz/"$name" -max_total_time="$secs" -print_final_stats=1 "$work"
    rm -rf "$work"
  done
  ;;
--format)
  files=$(git ls-files '*.c' '*.h')
  clang-format --dry-run --Werror $files
  echo "format: $(echo "$files" | wc -w) files match .clang-format"
  # public functions nobody else calls (needs the objects of a build with tests)
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCV_TESTS=ON
  cmake --build build -j"$jobs"
  bash scripts/unused-public.sh build
  ;;
*)
  echo "usage: scripts/test.sh [--sanitize | --fuzz SECS | --format]" >&2
  exit 2
  ;;
esac
