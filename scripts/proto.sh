#!/usr/bin/env bash
# Regenerates the committed protobuf code. Installs what it needs:
# Debian's protoc (protobuf-compiler) and the pinned gogofaster generator.
set -euo pipefail
cd "$(dirname "$0")/.."

GOGO_VERSION=v1.3.2
TOOLS="$PWD/.tools/bin"

if ! command -v protoc >/dev/null 2>&1; then
  echo "proto: installing Debian's protobuf-compiler" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq protobuf-compiler >/dev/null
fi
if [ ! -x "$TOOLS/protoc-gen-gogofaster" ] || ! grep -q "$GOGO_VERSION" "$TOOLS/.gogofaster-version" 2>/dev/null; then
  GOBIN="$TOOLS" go install "github.com/gogo/protobuf/protoc-gen-gogofaster@$GOGO_VERSION"
  echo "$GOGO_VERSION" > "$TOOLS/.gogofaster-version"
fi

for dir in proto/module/v1; do
  PATH="$TOOLS:$PATH" protoc -I . \
    --gogofaster_out=plugins=grpc,paths=source_relative:. \
    "$dir"/*.proto
done
