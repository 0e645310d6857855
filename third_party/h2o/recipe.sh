#!/usr/bin/env bash
# Builds h2o 2.2.5 (Debian's source package, with Debian's own patches) plus
# edgecri's patches in this folder, as a static library with a pkg-config
# file, into the prefix given as $1. Called by build.sh, which caches the
# result by the hash of this folder.
#
# Why a patched h2o: stock 2.2.5 cannot send HTTP/2 response trailers, and a
# gRPC status travels in trailers. See the patch headers for what each does.
set -euo pipefail

prefix=$1
here=$(cd "$(dirname "$0")" && pwd)
work="$prefix.work"
rm -rf "$work" "$prefix"
mkdir -p "$work"
cd "$work"

# Debian's source package: upstream 2.2.5 plus Debian's patches (system
# libyaml and wslay, CVE fixes), which dpkg-source applies on extraction.
apt-get source h2o >/dev/null 2>apt-source.log || { cat apt-source.log >&2; exit 1; }
src=$(find . -maxdepth 1 -type d -name 'h2o-2.2.5*' | head -n 1)
[ -n "$src" ] || { echo "recipe: apt-get source h2o did not give h2o 2.2.5" >&2; exit 1; }
cd "$src"

for p in "$here"/*.patch; do
  patch -p1 --forward --quiet < "$p"
done

mkdir -p _build
cd _build
cmake .. -DCMAKE_BUILD_TYPE=Release -DWITH_MRUBY=OFF -DWITH_BUNDLED_SSL=OFF -DWITH_PICOTLS=OFF \
  -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_C_FLAGS="-fno-strict-aliasing" >cmake.log 2>&1 \
  || { cat cmake.log >&2; exit 1; }
make -j"$(nproc)" libh2o >make.log 2>&1 || { tail -n 50 make.log >&2; exit 1; }

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp libh2o.a "$prefix/lib/libh2o-edgecri.a"
cp -r ../include/. "$prefix/include/"
cp ../deps/yoml/yoml.h ../deps/klib/khash.h "$prefix/include/"

cat > "$prefix/lib/pkgconfig/libh2o-edgecri.pc" <<PC
prefix=$prefix
Name: libh2o-edgecri
Description: h2o 2.2.5 (Debian source) with edgecri's HTTP/2 trailer patch, static
Version: 2.2.5
Requires.private: libuv openssl zlib yaml-0.1
Cflags: -I\${prefix}/include -DH2O_USE_LIBUV=1
Libs: \${prefix}/lib/libh2o-edgecri.a -lwslay -lpthread
PC
cd /
rm -rf "$work"
