#!/usr/bin/env bash
# Builds test/go/criclient, edgecri's grpc-go interoperability client.
#
#   test/go/build.sh OUTPUT_BINARY
#
# Works offline with Debian 12's packages only (golang-go,
# golang-google-grpc-dev, golang-google-protobuf-dev, protoc-gen-go,
# protoc-gen-go-grpc, protobuf-compiler): the Go stubs are generated from our
# own src/cri/api.proto into a throw-away GOPATH at its go_package path
# (k8s.io/cri-api/pkg/apis/runtime/v1), the client is copied next to them, and
# the program is built in GOPATH mode (GO111MODULE=off) against
# /usr/share/gocode. Nothing is written into the source tree; the temporary
# GOPATH and Go build cache are removed on exit.
set -euo pipefail

die() { printf 'test/go/build.sh: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTPUT_BINARY"

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
PROTO="$TOP/src/cri/api.proto"
GO_PACKAGE=k8s.io/cri-api/pkg/apis/runtime/v1
SYSTEM_GOPATH=/usr/share/gocode

OUT=$1
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

for tool in go protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc)"
done
[ -f "$PROTO" ] || die "$PROTO not found"
[ -d "$SYSTEM_GOPATH/src/google.golang.org/grpc" ] || die "$SYSTEM_GOPATH/src/google.golang.org/grpc missing (apt-get install golang-google-grpc-dev)"
[ -d "$SYSTEM_GOPATH/src/google.golang.org/protobuf" ] || die "$SYSTEM_GOPATH/src/google.golang.org/protobuf missing (apt-get install golang-google-protobuf-dev)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgecri-go-XXXXXX")
cleanup() {
  # The module/build caches are written read-only; make them removable.
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

GOPATH_DIR="$WORK/gopath"
STUBS="$GOPATH_DIR/src/$GO_PACKAGE"
CLIENT="$GOPATH_DIR/src/edgecri/test/criclient"
mkdir -p "$STUBS" "$CLIENT" "$WORK/cache" "$WORK/tmp"

# Stubs: paths=source_relative puts api.pb.go / api_grpc.pb.go straight into
# the go_package directory; the M option pins the import path regardless of
# what the proto file says.
protoc --proto_path="$(dirname "$PROTO")" \
  --go_out="$STUBS" --go_opt=paths=source_relative --go_opt="Mapi.proto=$GO_PACKAGE" \
  --go-grpc_out="$STUBS" --go-grpc_opt=paths=source_relative --go-grpc_opt="Mapi.proto=$GO_PACKAGE" \
  "$PROTO"

cp "$HERE/criclient/"*.go "$CLIENT/"

mkdir -p "$(dirname "$OUT")"
(
  cd "$CLIENT"
  # A clean environment for the go tool: GOPATH mode, no module proxy, no
  # toolchain switching, caches inside $WORK.
  unset GOFLAGS GOROOT GOBIN GOENV
  export GO111MODULE=off GOPATH="$GOPATH_DIR:$SYSTEM_GOPATH" GOCACHE="$WORK/cache" \
         GOTMPDIR="$WORK/tmp" GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0
  go build -o "$OUT" .
)
printf 'built %s\n' "$OUT"
