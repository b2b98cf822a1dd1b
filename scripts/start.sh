#!/usr/bin/env bash
# Installs what is missing, builds cronvisor, and starts it on the embedded SQLite default with the
# example jobs and the dashboard: http://127.0.0.1:8080/
#   scripts/start.sh [extra arguments for `cronvisor run`]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCV_TESTS=OFF
cmake --build build -j"$(nproc)"
exec ./build/cronvisor run -c examples/cronvisor.yaml "$@"
