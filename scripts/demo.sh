#!/bin/sh
# The main job: build Vulcan CI and show it working on the example workflow.
# Today that validates examples/simple.kdl and prints its expanded chain; it
# grows into "a server with SQLite and local workers" as the engine lands.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
vulcan="$build/vulcan"
example=${1:-$root/examples/simple.kdl}

echo "== vulcan parse $example"
"$vulcan" parse "$example"
echo
echo "== the same chain as JSON (vulcan parse --json)"
"$vulcan" parse --json "$example"
