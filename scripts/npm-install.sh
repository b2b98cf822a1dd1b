#!/bin/sh
# Installs the npm dependencies pinned by package-lock.json in the current folder with `npm ci`
# (never `npm install`: the lock file is the truth, and it lists every platform's optional
# packages, e.g. rollup's and esbuild's native builds, so `npm ci` accepts it on any machine;
# tests/blackbox/test_frictions.py checks that it stays so).
exec npm ci --no-audit --no-fund --loglevel=error
