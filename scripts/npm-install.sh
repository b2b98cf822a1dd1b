#!/bin/sh
# Installs the npm dependencies pinned by package-lock.json in the current folder.
# `npm ci` is tried first; some npm releases write lock files without other platforms' optional
# packages (rollup's native builds) and then refuse them in `npm ci`: `npm install --no-save`
# installs the same pinned versions without touching the lock file.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  exit 0
fi
echo "npm ci refused the lock file; installing the same pinned versions with npm install" >&2
if npm install --no-save --no-audit --no-fund --loglevel=error; then
  exit 0
fi
cat "$log" >&2
exit 1
