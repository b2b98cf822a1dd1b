#!/usr/bin/env bash
# Installs what cronvisor needs on Debian 12, non-interactively, and only what is missing.
#   scripts/install-deps.sh          build dependencies (enough to build and run the daemon)
#   scripts/install-deps.sh --test   also what the test suite needs (servers, fuzzing, browser)
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config git ca-certificates tzdata
  libuv1-dev libh2o-dev libwslay-dev libssl-dev libpq-dev libhiredis-dev
  libcurl4-openssl-dev libsqlite3-dev libjansson-dev libcyaml-dev libyaml-dev zlib1g-dev
)
test_pkgs=(
  libcmocka-dev clang libclang-rt-14-dev clang-format python3 sqlite3
  postgresql redis-server prometheus wrk nginx-light chromium util-linux procps
  curl openssl
  python3-yaml
  mmdebstrap umoci
)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${test_pkgs[@]}")
fi
# Node.js builds the dashboard; a machine that already has a node >= 18 keeps it.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
