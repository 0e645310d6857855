#!/usr/bin/env bash
# Builds kubelet from Debian's `kubernetes` source package (1.20, the only
# kubelet source in Debian 12; its Go dependencies are vendored) with
# Debian's golang-go, for the end-to-end test that runs a real kubelet
# against edgecri (test/e2e/test_kubelet.py).
#
#   test/kubelet/build-kubelet.sh       build once, print the output directory
#
# The output directory, build/.deps/kubelet-<source version>-<hash of this
# script>/, holds:
#   kubelet             the binary (static, no cgo, no cloud providers, no
#                       dockershim: build tags providerless,dockerless)
#   v1alpha2/api.proto  the CRI v1alpha2 proto from the same source tree
#                       (staging/src/k8s.io/cri-api), which the tests compile
#                       at test time; it is not part of edgecri's repository
#   build-seconds       how long the Go build took
# Once that directory is complete the script only prints its path. The
# extracted source and Go's build cache are removed after a build.
#
# Needs a deb-src entry for Debian's archive (build.sh adds one) and the
# Debian packages dpkg-dev and golang-go. Nothing is fetched but the source
# package: Go runs with GOPROXY=off in GOPATH mode over the vendor tree, the
# way the package's own build (hack/make-rules) does it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
die() { printf 'build-kubelet.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }

# The version apt-get source would pick (the highest the deb-src lists know).
version=$(apt-cache showsrc --only-source kubernetes 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n 1)
[ -n "$version" ] || die "no source package 'kubernetes' in apt's lists (needs a deb-src entry; ./build.sh adds one)"
key=$(sha256sum "$here/build-kubelet.sh" | cut -c1-12)
out="$top/build/.deps/kubelet-${version//[^A-Za-z0-9.+-]/_}-$key"
if [ -x "$out/kubelet" ] && [ -f "$out/v1alpha2/api.proto" ] && [ -f "$out/build-seconds" ]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || die "go not found (Debian package golang-go)"
command -v dpkg-source >/dev/null || die "dpkg-source not found (Debian package dpkg-dev)"

mkdir -p "$top/build/.deps"
rm -rf "$top"/build/.deps/kubelet-*
work=$(mktemp -d "$top/build/.deps/kubelet-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

log "fetching Debian's kubernetes $version source package"
apt-get source --download-only "kubernetes=$version" >apt-source.log 2>&1 || { cat apt-source.log >&2; exit 1; }
dsc=$(ls ./*.dsc)
# Extraction applies Debian's patches (debian/patches). apt has checked the
# files against the signed archive index; --no-check skips the .dsc's own
# signature (that would need the maintainers' keyring).
dpkg-source --no-check -x "$dsc" src >dpkg-source.log 2>&1 || { cat dpkg-source.log >&2; exit 1; }

# Kubernetes 1.20 builds in GOPATH mode with the tree at
# $GOPATH/src/k8s.io/kubernetes (hack/lib/init.sh sets GO111MODULE=off);
# imports resolve through its vendor/ directory.
mkdir -p gopath/src/k8s.io home
ln -s "$work/src" gopath/src/k8s.io/kubernetes
upstream=${version%%-*}
upstream=${upstream##*really}
pkg=k8s.io/kubernetes/vendor/k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=v$upstream -X $pkg.gitMajor=${upstream%%.*}"
minor=${upstream#*.}
ldflags+=" -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean"

log "building cmd/kubelet with $(go version | cut -d' ' -f3) (takes minutes; cached afterwards)"
start=$(date +%s)
(
  # Go takes the working directory from $PWD when it names the same place:
  # it must be the path inside GOPATH, not the symlink's target, or the
  # vendor directory does not apply.
  tree="$work/gopath/src/k8s.io/kubernetes"
  cd "$tree"
  env -i PATH="$PATH" PWD="$tree" HOME="$work/home" GOENV=off GO111MODULE=off GOPATH="$work/gopath" \
    GOCACHE="$work/gocache" GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
    go build -tags providerless,dockerless -trimpath -ldflags "$ldflags" -o "$work/kubelet" ./cmd/kubelet
) >go-build.log 2>&1 || { tail -n 50 go-build.log >&2; die "go build failed (log above)"; }
seconds=$(($(date +%s) - start))

"$work/kubelet" --version >/dev/null || die "the kubelet just built does not run"
staged="$work/out"
mkdir -p "$staged/v1alpha2"
cp "$work/kubelet" "$staged/kubelet"
cp src/staging/src/k8s.io/cri-api/pkg/apis/runtime/v1alpha2/api.proto "$staged/v1alpha2/api.proto"
echo "$seconds" >"$staged/build-seconds"
mv "$staged" "$out"
log "built $out/kubelet in ${seconds}s"
echo "$out"
