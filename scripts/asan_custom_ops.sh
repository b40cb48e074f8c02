#!/usr/bin/env bash
# Builds the CPU kernels + the C++ test (custom_ops/tests) with -fsanitize=address,undefined into
# custom_ops/build-asan and runs the test. Same header lookup as build_custom_ops.sh (ORT_INCLUDE_DIR or
# the cached Debian headers); CUDA is never built here.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${TREXPORT_ASAN_BUILD_DIR:-$ROOT/custom_ops/build-asan}"
die() { echo "trexport: asan build failed: $*" >&2; exit 1; }

if [[ -z "${ORT_INCLUDE_DIR:-}" ]]; then
  ORT_INCLUDE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/trexport/ort-headers/root/usr/include/onnxruntime"
  [[ -f "$ORT_INCLUDE_DIR/onnxruntime_c_api.h" ]] || {
    # Let the main script fetch the headers (it caches them), then reuse its cache.
    TREXPORT_WITH_CUDA=OFF TREXPORT_BUILD_DIR="$BUILD_DIR-fetch" bash "$ROOT/scripts/build_custom_ops.sh" >/dev/null \
      || die "no ORT headers (set ORT_INCLUDE_DIR)"
  }
fi
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
mkdir -p "$BUILD_DIR"
cmake -S "$ROOT/custom_ops" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORT_INCLUDE_DIR="$ORT_INCLUDE_DIR" \
  -DTREXPORT_WITH_CUDA=OFF -DTREXPORT_BUILD_TESTS=ON -DTREXPORT_OUTPUT_DIR="$BUILD_DIR/lib" \
  -DCMAKE_CXX_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" -DCMAKE_SHARED_LINKER_FLAGS="$SAN" \
  >"$BUILD_DIR/configure.log" 2>&1 || { tail -n 20 "$BUILD_DIR/configure.log" >&2; die "cmake configure failed"; }
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc 2>/dev/null || echo 2)}" --target test_topk_gather_cpu \
  >"$BUILD_DIR/build.log" 2>&1 || { tail -n 30 "$BUILD_DIR/build.log" >&2; die "compile failed"; }
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  "$BUILD_DIR/test_topk_gather_cpu"
