#!/usr/bin/env bash
# Lists the public (external) functions of cronvisor's own objects that no other object file
# references: they should be static, or go. Users are every object of the build (the daemon, the
# unit tests, the benches) and the fuzz targets' sources (not built by default): a function only
# a test of its module calls may stay public.
#   scripts/unused-public.sh [BUILD_DIR]    (default build/, built with -DCV_TESTS=ON)
# Exits 1 when a function is listed that scripts/unused-public.allow does not name (one a line).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
lib="$build/CMakeFiles/cvlib.dir"
[ -d "$lib" ] || { echo "unused-public: no $lib (build first)" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# every symbol some object needs from another one
find "$build" -name '*.o' -print0 | xargs -0 nm -u --format=posix 2>/dev/null |
  awk '{print $1}' | sort -u >"$tmp/used"
# what the fuzz targets call (their sources, by name)
cat tests/fuzz/*.c 2>/dev/null | grep -oE '\b[a-z_][a-z0-9_]*\b' | sort -u >"$tmp/fuzz" || true
: >"$tmp/unused"
while IFS= read -r -d '' o; do
  nm -g --defined-only --format=posix "$o" | awk '$2 == "T" {print $1}' | while read -r sym; do
    grep -qxF "$sym" "$tmp/used" && continue
    grep -qxF "$sym" "$tmp/fuzz" && continue
    echo "$sym ${o#"$lib"/}" >>"$tmp/unused"
  done
done < <(find "$lib" -name '*.o' -print0)
allow=scripts/unused-public.allow
bad=0
sort "$tmp/unused" | while read -r sym obj; do
  if [ -f "$allow" ] && grep -qxF "$sym" "$allow"; then
    echo "allowed: $sym (${obj%.o})"
  else
    echo "unused public function: $sym (${obj%.o}): make it static or remove it"
  fi
done
if [ -f "$allow" ]; then
  bad=$(awk '{print $1}' "$tmp/unused" | grep -cvxF -f <(grep -v '^#' "$allow") || true)
else
  bad=$(wc -l <"$tmp/unused")
fi
[ "$bad" -eq 0 ] || { echo "unused-public: $bad function(s) to fix" >&2; exit 1; }
echo "unused-public: no unused public function"
