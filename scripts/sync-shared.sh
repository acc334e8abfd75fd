#!/usr/bin/env bash
# Copies the shared specification inputs into the project (a newcomer's clone has no
# ../shared). Run after ../shared changes; the test `shared_copies_in_step` fails while
# the copies differ.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
cp "$shared/spec/layouts.toml" "$here/protocol/spec/202407.toml"
rm -rf "$here/fixtures"
cp -r "$shared/fixtures" "$here/fixtures"
echo "copied spec/layouts.toml and fixtures/ from $shared"
