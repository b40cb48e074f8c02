// CUDA host side of TopKGather / TopKGatherPacked: ORT inputs/outputs, the one device-to-host copy of the
// kept counts that sizes the outputs, and the launches (all on ORT's compute stream).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <limits>
#include <string>

#include "topk_gather/topk_gather.h"
#include "topk_gather/topk_gather_cuda.cuh"

namespace trexport {
namespace topk_gather {

// Pinned host buffer for the kept counts, grown on demand and reused across calls (guarded by the kernel's
// cuda_mutex, since one kernel object can serve concurrent Run calls).
struct CudaState {
  int64_t* pinned_counts = nullptr;
  int64_t capacity = 0;
};

void ReleaseCudaState(CudaState* state) {
  if (state->pinned_counts) cudaFreeHost(state->pinned_counts);
  delete state;
}

namespace {

OrtStatusPtr CudaError(const OrtApi& api, const char* op, const char* what, cudaError_t err) {
  const std::string msg = std::string(op) + ": " + what + " failed: " + cudaGetErrorString(err);
  return api.CreateStatus(ORT_RUNTIME_EXCEPTION, msg.c_str());
}

#define TREXPORT_RETURN_IF_CUDA_ERROR(expr, what)                 \
  do {                                                            \
    cudaError_t _err = (expr);                                    \
    if (_err != cudaSuccess) return CudaError(api, op, what, _err); \
  } while (0)

// Device scratch from CUDA's stream-ordered allocator, freed on the same stream when the scope ends.
struct StreamScratch {
  void* ptr = nullptr;
  cudaStream_t stream;
  explicit StreamScratch(cudaStream_t s) : stream(s) {}
  ~StreamScratch() {
    if (ptr) cudaFreeAsync(ptr, stream);
  }
};

// Copies counts[0..B) to host (pinned, cached) and waits for the stream; the only host sync of the op.
OrtStatusPtr CountsToHost(TopKGatherKernel& kernel, const int64_t* counts, int64_t B, cudaStream_t stream,
                          int64_t* max_count, int64_t* total) {
  const OrtApi& api = kernel.api;
  const char* op = OpName(kernel.variant.packed);
  std::lock_guard<std::mutex> lock(kernel.cuda_mutex);
  if (!kernel.cuda) kernel.cuda = new CudaState();
  CudaState& state = *kernel.cuda;
  if (state.capacity < B) {
    if (state.pinned_counts) cudaFreeHost(state.pinned_counts);
    state.pinned_counts = nullptr;
    state.capacity = 0;
    TREXPORT_RETURN_IF_CUDA_ERROR(cudaMallocHost(reinterpret_cast<void**>(&state.pinned_counts), B * sizeof(int64_t)), "cudaMallocHost");
    state.capacity = B;
  }
  TREXPORT_RETURN_IF_CUDA_ERROR(
      cudaMemcpyAsync(state.pinned_counts, counts, B * sizeof(int64_t), cudaMemcpyDeviceToHost, stream),
      "cudaMemcpyAsync(counts)");
  TREXPORT_RETURN_IF_CUDA_ERROR(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  *max_count = 0;
  *total = 0;
  for (int64_t b = 0; b < B; ++b) {
    *max_count = std::max(*max_count, state.pinned_counts[b]);
    *total += state.pinned_counts[b];
  }
  return nullptr;
}

}  // namespace

OrtStatusPtr ComputeCuda(TopKGatherKernel& kernel, OrtKernelContext* ctx) {
  const OrtApi& api = kernel.api;
  const bool packed = kernel.variant.packed;
  const char* op = OpName(packed);
  Inputs in;
  TREXPORT_RETURN_IF_ERROR(ReadInputs(api, ctx, kernel.variant, &in));
  if (in.S > std::numeric_limits<int32_t>::max()) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, "TopKGather: sequence length does not fit int32");
  }
  void* stream_ptr = nullptr;
  TREXPORT_RETURN_IF_ERROR(api.KernelContext_GetGPUComputeStream(ctx, &stream_ptr));
  if (stream_ptr == nullptr) return api.CreateStatus(ORT_FAIL, "TopKGather: no CUDA compute stream from ORT");
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const size_t row_bytes = static_cast<size_t>(in.H) * in.elem_size;

  const int64_t counts_dims[1] = {in.B};
  void* counts_ptr = nullptr;
  TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 3, counts_dims, 1, &counts_ptr));
  auto* counts = static_cast<int64_t*>(counts_ptr);

  StreamScratch slots(stream);
  const size_t slot_bytes = static_cast<size_t>(in.B * in.S) * sizeof(int32_t);
  if (slot_bytes > 0) TREXPORT_RETURN_IF_CUDA_ERROR(cudaMallocAsync(&slots.ptr, slot_bytes, stream), "cudaMallocAsync");
  auto* slot = static_cast<int32_t*>(slots.ptr);
  TREXPORT_RETURN_IF_CUDA_ERROR(cuda::LaunchSelect(kernel.rule, in.scores, in.mask, in.B, in.S, slot, counts, stream),
                                "select kernel");
  int64_t K = 0;
  int64_t total = 0;
  if (in.B > 0) TREXPORT_RETURN_IF_ERROR(CountsToHost(kernel, counts, in.B, stream, &K, &total));

  void* out[3] = {nullptr, nullptr, nullptr};
  if (!packed) {
    const int64_t dims[3] = {in.B, K, in.H};
    TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 0, dims, 3, &out[0]));
    TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 1, dims, 2, &out[1]));
    TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 2, dims, 2, &out[2]));
    const size_t slots_out = static_cast<size_t>(in.B * K);
    if (slots_out > 0) {
      TREXPORT_RETURN_IF_CUDA_ERROR(cudaMemsetAsync(out[0], 0, slots_out * row_bytes, stream), "cudaMemsetAsync");
      TREXPORT_RETURN_IF_CUDA_ERROR(cudaMemsetAsync(out[1], 0, slots_out * sizeof(int64_t), stream), "cudaMemsetAsync");
      TREXPORT_RETURN_IF_CUDA_ERROR(cudaMemsetAsync(out[2], 0, slots_out * sizeof(int64_t), stream), "cudaMemsetAsync");
    }
    TREXPORT_RETURN_IF_CUDA_ERROR(
        cuda::LaunchGatherPadded(in.hidden, in.B, in.S, row_bytes, K, slot, out[0], static_cast<int64_t*>(out[1]),
                                 static_cast<int64_t*>(out[2]), stream),
        "gather kernel");
    return nullptr;
  }

  if (total > std::numeric_limits<int32_t>::max()) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, "TopKGatherPacked: total kept tokens do not fit int32");
  }
  const int64_t cu_dims[1] = {in.B + 1};
  const int64_t dims[2] = {total, in.H};
  TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 0, dims, 2, &out[0]));
  TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 1, cu_dims, 1, &out[1]));
  TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 2, dims, 1, &out[2]));
  auto* cu = static_cast<int32_t*>(out[1]);
  TREXPORT_RETURN_IF_CUDA_ERROR(cuda::LaunchCumulativeLengths(counts, in.B, cu, stream), "cumulative lengths kernel");
  TREXPORT_RETURN_IF_CUDA_ERROR(cuda::LaunchGatherPacked(in.hidden, in.B, in.S, row_bytes, slot, cu, out[0],
                                                         static_cast<int64_t*>(out[2]), stream),
                                "packed gather kernel");
  return nullptr;
}

}  // namespace topk_gather
}  // namespace trexport
