#!/usr/bin/env bash
# Builds the trexport custom-op library: trexport/runtime/lib/libtrexport_ops.so (+ VERSION).
#
# ORT headers, first found wins: -DORT_INCLUDE_DIR=... argument or $ORT_INCLUDE_DIR; pkg-config
# libonnxruntime; else Debian trixie's libonnxruntime-dev (ORT 1.21 headers), downloaded with a private apt
# state into ${XDG_CACHE_HOME:-$HOME/.cache}/trexport/ort-headers (system apt sources are never touched and
# nothing is installed). The library links nothing from onnxruntime (ORT_API_MANUAL_INIT).
# CUDA kernels are built when nvcc is found (PATH or /usr/local/cuda/bin); TREXPORT_WITH_CUDA=OFF skips them.
#
# Usage: bash scripts/build_custom_ops.sh [-DORT_INCLUDE_DIR=/path] [extra cmake -D options]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${TREXPORT_BUILD_DIR:-$ROOT/custom_ops/build}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/trexport/ort-headers"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

die() { echo "trexport: build failed: $*" >&2; exit 1; }

EXTRA_ARGS=()
for arg in "$@"; do
  case "$arg" in
    -DORT_INCLUDE_DIR=*) ORT_INCLUDE_DIR="${arg#-DORT_INCLUDE_DIR=}" ;;
    *) EXTRA_ARGS+=("$arg") ;;
  esac
done

fetch_debian_headers() {
  local inc="$CACHE/root/usr/include/onnxruntime"
  if [[ -f "$inc/onnxruntime_c_api.h" ]]; then echo "$inc"; return 0; fi
  command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "no ORT headers: pass -DORT_INCLUDE_DIR=..."
  mkdir -p "$CACHE/lists/partial" "$CACHE/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" > "$CACHE/trixie.list"
  local apt_opts=(-o "Dir::State::Lists=$CACHE/lists" -o "Dir::Etc::SourceList=$CACHE/trixie.list"
                  -o "Dir::Etc::SourceParts=/dev/null" -o "Dir::Cache::Archives=$CACHE/archives"
                  -o "Debug::NoLocking=1")
  echo "trexport: downloading libonnxruntime-dev (Debian trixie, ORT 1.21 headers) into $CACHE" >&2
  (cd "$CACHE" && apt-get "${apt_opts[@]}" update >"$CACHE/apt.log" 2>&1 \
     && apt-get "${apt_opts[@]}" download libonnxruntime-dev >>"$CACHE/apt.log" 2>&1) \
    || die "could not download libonnxruntime-dev (see $CACHE/apt.log); pass -DORT_INCLUDE_DIR=..."
  local deb
  deb="$(ls -t "$CACHE"/libonnxruntime-dev_*.deb 2>/dev/null | head -n1)"
  [[ -n "$deb" ]] || die "libonnxruntime-dev .deb missing after download (see $CACHE/apt.log)"
  dpkg -x "$deb" "$CACHE/root" || die "dpkg -x $deb failed"
  [[ -f "$inc/onnxruntime_c_api.h" ]] || die "$deb has no onnxruntime/onnxruntime_c_api.h"
  echo "$inc"
}

if [[ -z "${ORT_INCLUDE_DIR:-}" ]] && command -v pkg-config >/dev/null && pkg-config --exists libonnxruntime; then
  for dir in $(pkg-config --cflags-only-I libonnxruntime | sed 's/-I//g'); do
    [[ -f "$dir/onnxruntime_c_api.h" ]] && ORT_INCLUDE_DIR="$dir" && break
    [[ -f "$dir/onnxruntime/onnxruntime_c_api.h" ]] && ORT_INCLUDE_DIR="$dir/onnxruntime" && break
  done
fi
[[ -n "${ORT_INCLUDE_DIR:-}" ]] || ORT_INCLUDE_DIR="$(fetch_debian_headers)"
[[ -f "$ORT_INCLUDE_DIR/onnxruntime_c_api.h" ]] || die "onnxruntime_c_api.h not in $ORT_INCLUDE_DIR"
echo "trexport: ORT headers from $ORT_INCLUDE_DIR ($(grep -m1 '#define ORT_API_VERSION' "$ORT_INCLUDE_DIR/onnxruntime_c_api.h" | awk '{print "API " $3}'))"

WITH_CUDA="${TREXPORT_WITH_CUDA:-}"
CUDA_ARGS=()
if [[ "$WITH_CUDA" == "OFF" ]]; then
  echo "trexport: TREXPORT_WITH_CUDA=OFF, skipping CUDA kernels"
else
  NVCC="$(command -v nvcc || true)"
  [[ -z "$NVCC" && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc
  if [[ -n "$NVCC" ]]; then
    WITH_CUDA=ON
    CUDA_ARGS=(-DCMAKE_CUDA_COMPILER="$NVCC")
    echo "trexport: building CUDA kernels with $NVCC"
  else
    WITH_CUDA=OFF
    echo "trexport: nvcc not found, skipping CUDA kernels"
  fi
fi

mkdir -p "$BUILD_DIR"
cmake -S "$ROOT/custom_ops" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DORT_INCLUDE_DIR="$ORT_INCLUDE_DIR" \
  -DTREXPORT_WITH_CUDA="$WITH_CUDA" "${CUDA_ARGS[@]}" "${EXTRA_ARGS[@]}" >"$BUILD_DIR/configure.log" 2>&1 \
  || { tail -n 20 "$BUILD_DIR/configure.log" >&2; die "cmake configure failed (log: $BUILD_DIR/configure.log)"; }
cmake --build "$BUILD_DIR" -j "$JOBS" >"$BUILD_DIR/build.log" 2>&1 \
  || { tail -n 30 "$BUILD_DIR/build.log" >&2; die "compile failed (log: $BUILD_DIR/build.log)"; }

LIB="$ROOT/trexport/runtime/lib/libtrexport_ops.so"
[[ -f "$LIB" ]] || die "$LIB was not produced"
echo "trexport: built $LIB (version $(cat "$ROOT/trexport/runtime/lib/VERSION"), CUDA $WITH_CUDA)"
