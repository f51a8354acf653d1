#!/bin/sh
# Generates the Python gRPC stubs module.py imports, into gen/ next to this
# script (git-ignored): execmod's protocol from ../../proto/module/v1 and
# the go-plugin services from proto/. Needs Debian's python3-grpc-tools
# (or grpcio-tools from PyPI for another interpreter: PYTHON=...).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d "$here/gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m grpc_tools.protoc -I "$here/../../proto/module/v1" \
	--python_out="$tmp" --grpc_python_out="$tmp" module.proto
"$PYTHON" -m grpc_tools.protoc -I "$here/proto" \
	--python_out="$tmp" --grpc_python_out="$tmp" health.proto goplugin.proto
rm -rf "$here/gen"
chmod 755 "$tmp"
mv -T "$tmp" "$here/gen"
trap - EXIT
