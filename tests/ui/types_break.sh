#!/bin/sh
# The dashboard's types come from proto/openapi.yaml: renaming a field (or an event's type) there
# that the dashboard uses must break its type check. Copies http/ui/src to a temporary folder,
# type-checks it against the real openapi.yaml (must pass), then against mutated copies (each
# must fail, naming the renamed thing). Usage: types_break.sh <http/ui dir> <openapi.yaml>
set -eu
ui=$1
spec=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$ui/src" "$ui/tsconfig.json" "$ui/vite.config.ts" "$tmp/"
rm -rf "$tmp/src/gen"
ln -s "$ui/node_modules" "$tmp/node_modules"

check() { # <spec file>: prints the errors of tsc, returns its status
    "$ui/node_modules/.bin/openapi-typescript" "$1" -o "$tmp/src/gen/api.d.ts" >/dev/null 2>&1
    (cd "$tmp" && ./node_modules/.bin/tsc --noEmit -p .)
}

if ! out=$(check "$spec"); then
    echo "FAIL: the dashboard does not type-check against $spec:"
    echo "$out"
    exit 1
fi
echo "ok   the dashboard type-checks against openapi.yaml"

# <description> <sed expression> <text expected in tsc's errors>
mutate() {
    sed "$2" "$spec" >"$tmp/mutated.yaml"
    if cmp -s "$spec" "$tmp/mutated.yaml"; then
        echo "FAIL: $1: the mutation changed nothing (openapi.yaml moved on?)"
        exit 1
    fi
    if out=$(check "$tmp/mutated.yaml"); then
        echo "FAIL: $1: the dashboard still type-checks"
        exit 1
    fi
    case $out in
    *"$3"*) echo "ok   $1 breaks the build" ;;
    *)
        echo "FAIL: $1: tsc failed without naming $3:"
        echo "$out"
        exit 1
        ;;
    esac
}

mutate "Job.next_fire renamed next_fire_at" 's/\bnext_fire\b/next_fire_at/g' "next_fire"
mutate "the job.removed event renamed job.deleted" 's/\[job\.removed\]/[job.deleted]/; s/^\(  *\)job\.removed: /\1job.deleted: /' '"job.removed"'
