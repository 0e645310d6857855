#!/usr/bin/env bash
# edgecri's one entry point for building and testing on Debian 12.
#
#   ./build.sh                 install what is missing (apt), build h2o from
#                              Debian's source with our patch (cached), build
#                              build/edgecri
#   ./build.sh --asan          the same with AddressSanitizer + UBSan, into
#                              build-asan/edgecri
#   ./build.sh test [--asan] [pytest args...]
#                              build, build kubelet 1.20 from Debian's source
#                              for the kubelet tests (cached), then run every
#                              test (C unit tests and the end-to-end suite);
#                              the last line is pytest's summary
#   ./build.sh deps            only install the packages (Dockerfile.dev)
#
# Runs as root or with sudo: installing packages and the end-to-end tests
# (namespaces, mounts, cgroups) need it.
set -euo pipefail

cd "$(dirname "$0")"
TOP=$PWD

# Everything the build, the tests and the benchmarks need, from Debian only.
BUILD_PACKAGES=(
  gcc make pkg-config meson ninja-build cmake patch dpkg-dev libzstd-dev
  libuv1-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev zlib1g-dev
  libarchive-dev libseccomp-dev libcurl4-openssl-dev libyaml-dev libjansson-dev libwslay-dev
)
TEST_PACKAGES=(
  python3 python3-pytest python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc
  containerd runc python3-matplotlib
  golang-go golang-google-grpc-dev golang-google-protobuf-dev protoc-gen-go protoc-gen-go-grpc
  procps python3-h2 util-linux iproute2 iptables containernetworking-plugins bpftool
  docker-registry busybox-static zstd apache2-utils python3-cryptography openssl
  python3-websocket golang-github-docker-spdystream-dev
)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
}

ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  apt_update_once
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# apt-get source needs a deb-src entry; add one mirroring the configured
# Debian sources when there is none.
ensure_deb_src() {
  if apt-cache showsrc h2o 2>/dev/null | grep -q '^Package: h2o'; then
    return 0
  fi
  local file=/etc/apt/sources.list.d/edgecri-deb-src.sources
  log "adding a deb-src entry ($file) for apt-get source"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -n '/^Types:/,/^$/p' /etc/apt/sources.list.d/debian.sources |
      sed 's/^Types:.*/Types: deb-src/' | as_root tee "$file" >/dev/null
  else
    as_root tee "$file" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  APT_UPDATED=0
  apt_update_once
  apt-cache showsrc h2o 2>/dev/null | grep -q '^Package: h2o' || die "no source package for h2o after adding $file"
}

# h2o is cached by the hash of its recipe and patches.
H2O_PREFIX=
build_h2o() {
  local key
  key=$(cat third_party/h2o/recipe.sh third_party/h2o/*.patch | sha256sum | cut -c1-16)
  H2O_PREFIX="$TOP/build/.deps/h2o-$key"
  if [ -f "$H2O_PREFIX/lib/pkgconfig/libh2o-edgecri.pc" ]; then
    return 0
  fi
  ensure_deb_src
  log "building h2o 2.2.5 from Debian's source with third_party/h2o patches"
  mkdir -p build/.deps
  rm -rf build/.deps/h2o-*
  third_party/h2o/recipe.sh "$H2O_PREFIX"
}

build_edgecri() {
  local dir=$1 asan=$2 opts=()
  [ "$asan" = 1 ] && opts+=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug)
  export PKG_CONFIG_PATH="$H2O_PREFIX/lib/pkgconfig"
  # A new h2o build lives at a new path: configure from scratch.
  if [ -f "$dir/build.ninja" ] && [ "$(cat "$dir/.h2o-prefix" 2>/dev/null)" != "$H2O_PREFIX" ]; then
    meson setup --wipe "$dir" "${opts[@]}" >/dev/null
  elif [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "${opts[@]}" >/dev/null
  fi
  echo "$H2O_PREFIX" >"$dir/.h2o-prefix"
  log "compiling $dir/edgecri"
  meson compile -C "$dir" >"$dir/compile.log" 2>&1 || { cat "$dir/compile.log" >&2; die "compilation failed"; }
}

# kubelet 1.20 from Debian's kubernetes source package, which the end-to-end
# tests run against edgecri (test_kubelet.py) and take the CRI v1alpha2 proto
# from (test_v1alpha2.py). Built once (minutes) and cached under build/.deps.
KUBELET_DIR=
build_kubelet() {
  ensure_deb_src
  KUBELET_DIR=$(test/kubelet/build-kubelet.sh) || die "building kubelet failed"
}

main() {
  local cmd=build asan=0
  case "${1:-}" in
    test) cmd=test; shift ;;
    deps) cmd=deps; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
  local pytest_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --asan) asan=1 ;;
      *) pytest_args+=("$1") ;;
    esac
    shift
  done
  if [ "$cmd" = build ] && [ "${#pytest_args[@]}" -gt 0 ]; then
    die "unknown argument: ${pytest_args[0]} (see ./build.sh --help)"
  fi

  ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
  [ "$cmd" = deps ] && return 0

  build_h2o
  local dir=build
  [ "$asan" = 1 ] && dir=build-asan
  build_edgecri "$dir" "$asan"
  log "built $dir/edgecri"
  [ "$cmd" = build ] && return 0

  build_kubelet
  export EDGECRI_BUILD="$TOP/$dir" EDGECRI_BIN="$TOP/$dir/edgecri" EDGECRI_ASAN="$asan"
  export EDGECRI_KUBELET_DIR="$KUBELET_DIR"
  cd "$TOP/test"
  exec /usr/bin/python3 -m pytest -p no:cacheprovider "${pytest_args[@]}"
}

main "$@"
