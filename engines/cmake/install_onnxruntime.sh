#!/usr/bin/env bash
# Installs ONNX Runtime for the C++ runtime into PREFIX (include/ and lib/), from package registries:
# no official C/C++ package is reachable here, so the library comes from the onnxruntime Python wheel
# (PyPI; its wheels carry libonnxruntime.so, 1.20 and later at least) and the headers from Debian trixie's
# libonnxruntime-dev (1.21: the wheel must be 1.21 or newer).
# Older headers against a newer library are supported by ONNX Runtime's C API (it serves every API
# version up to its own), so the script checks the headers' API version is not newer than the library.
#
#   bash engines/cmake/install_onnxruntime.sh PREFIX [VERSION]      (VERSION: the wheel's, default below)
#   then: cmake -DONNXRUNTIME_ROOT=PREFIX ...
#
# Needs python3 with pip (PYTHON overrides it), apt-get, dpkg-deb and Debian's archive keyring, and network
# access to PyPI and deb.debian.org. Root is not needed: apt runs on a private sources list and state.
set -euo pipefail

prefix=${1:?usage: install_onnxruntime.sh PREFIX [VERSION]}
version=${2:-1.32.0}
python=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The library: the wheel's libonnxruntime.so.VERSION, self-contained (libc, libstdc++ only).
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheel" "onnxruntime==$version"
"$python" -m zipfile -e "$work"/wheel/onnxruntime-*.whl "$work/wheel/x"
library="$work/wheel/x/onnxruntime/capi/libonnxruntime.so.$version"
[[ -f $library ]] || { echo "the onnxruntime $version wheel has no libonnxruntime.so.$version: pick a newer version" >&2; exit 1; }

# The headers: trixie's libonnxruntime-dev, fetched with apt on a private sources list and state.
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  > "$work/apt/sources.list"
touch "$work/apt/status"
apt_options=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
             -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
             -o "Dir::State::status=$work/apt/status" -o Debug::NoLocking=1
             -o "APT::Sandbox::User=$(id -un)")   # as root, apt's _apt user could not write into $work
apt-get -qq "${apt_options[@]}" update
(cd "$work" && apt-get -qq "${apt_options[@]}" download libonnxruntime-dev)
dpkg-deb -x "$work"/libonnxruntime-dev_*.deb "$work/deb"
headers="$work/deb/usr/include/onnxruntime"

api=$(sed -n 's/^#define ORT_API_VERSION \([0-9]*\)$/\1/p' "$headers/onnxruntime_c_api.h")
library_api=$(cut -d. -f2 <<< "$version")   # ONNX Runtime 1.N serves C API versions up to N
if (( api > library_api )); then
  echo "the headers are C API version $api, newer than ONNX Runtime $version: pick version 1.$api or newer" >&2
  exit 1
fi

mkdir -p "$prefix/include" "$prefix/lib"
cp -r "$headers"/. "$prefix/include/"
install -m 755 "$library" "$prefix/lib/"
ln -sf "libonnxruntime.so.$version" "$prefix/lib/libonnxruntime.so.1"   # the library's SONAME
ln -sf libonnxruntime.so.1 "$prefix/lib/libonnxruntime.so"
echo "ONNX Runtime $version (headers: C API version $api) in $prefix"
