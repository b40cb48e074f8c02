// CUDA kernels of TopKGather / TopKGatherPacked. Every launch goes to the caller's (ORT's) stream.
//
// Select: one block per row. Ratio/count ranks each candidate by counting the candidates that rank before
// it (O(S^2 / threads) per row: fine for BERT lengths, S <= 4096); a block-wide exclusive scan over the keep
// flags then gives each kept token its output slot, which preserves the original order.
#include "topk_gather/topk_gather_cuda.cuh"

namespace trexport {
namespace topk_gather {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Sum over the block; every thread gets the total. `shared` holds kWarps values.
__device__ int64_t BlockSum(int64_t v, int64_t* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFullMask, v, offset);
  if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
  __syncthreads();
  int64_t total = 0;
  for (int w = 0; w < kWarps; ++w) total += shared[w];
  __syncthreads();  // `shared` may be reused right after
  return total;
}

// Inclusive scan over the block; *total gets the block sum. `shared` holds kWarps values.
__device__ int BlockInclusiveScan(int v, int* shared, int* total) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const int n = __shfl_up_sync(kFullMask, v, offset);
    if (lane >= offset) v += n;
  }
  if (lane == 31) shared[warp] = v;
  __syncthreads();
  int prefix = 0;
  int sum = 0;
  for (int w = 0; w < kWarps; ++w) {
    const int x = shared[w];
    if (w < warp) prefix += x;
    sum += x;
  }
  __syncthreads();
  *total = sum;
  return v + prefix;
}

__global__ void SelectKernel(KeepRule rule, const float* __restrict__ scores, const int64_t* __restrict__ mask,
                             int64_t S, int32_t* __restrict__ slots, int64_t* __restrict__ counts) {
  __shared__ int64_t sum_shared[kWarps];
  __shared__ int scan_shared[kWarps];
  const int64_t b = blockIdx.x;
  const float* sc = scores + b * S;
  const int64_t* m = mask + b * S;
  int32_t* sl = slots + b * S;

  int64_t local = 0;
  for (int64_t t = threadIdx.x; t < S; t += kThreads) local += m[t] != 0;
  const int64_t n_alive = BlockSum(local, sum_shared);
  const RowPlan plan = PlanRow(rule, n_alive, S > 0 && m[0] != 0);

  // Keep flags, written to `sl` as 0/1; each thread later rescans exactly the tokens it wrote.
  for (int64_t t = threadIdx.x; t < S; t += kThreads) {
    int keep = 0;
    if (m[t] != 0) {
      if (plan.keep_all || (plan.cls && t == 0)) {
        keep = 1;
      } else if (!plan.rank_mode) {
        keep = sc[t] >= plan.cutoff;
      } else if (plan.rest > 0) {
        const float st = sc[t];
        int64_t ahead = 0;
        for (int64_t j = plan.cls ? 1 : 0; j < S && ahead < plan.rest; ++j) {
          ahead += m[j] != 0 && RanksBefore(sc[j], j, st, t);
        }
        keep = ahead < plan.rest;
      }
    }
    sl[t] = keep;
  }

  // Exclusive scan of the flags in chunks of kThreads tokens (same token-to-thread mapping as above).
  int64_t carry = 0;
  for (int64_t base = 0; base < S; base += kThreads) {
    const int64_t t = base + threadIdx.x;
    const int flag = t < S ? sl[t] : 0;
    int chunk_total = 0;
    const int inclusive = BlockInclusiveScan(flag, scan_shared, &chunk_total);
    if (t < S) sl[t] = flag ? static_cast<int32_t>(carry + inclusive - 1) : -1;
    carry += chunk_total;
  }
  if (threadIdx.x == 0) counts[b] = carry;
}

// Copies one row of `row_bytes` with vector type V (row_bytes % sizeof(V) == 0, pointers aligned).
template <typename V>
__device__ void CopyRow(const uint8_t* src, uint8_t* dst, size_t row_bytes) {
  const V* s = reinterpret_cast<const V*>(src);
  V* d = reinterpret_cast<V*>(dst);
  const size_t n = row_bytes / sizeof(V);
  for (size_t i = threadIdx.x; i < n; i += blockDim.x) d[i] = s[i];
}

// One block per (b, s) token, grid-stride; dropped tokens return at once.
template <typename V>
__global__ void GatherKernel(const uint8_t* __restrict__ hidden, int64_t B, int64_t S, size_t row_bytes,
                             int64_t K, const int32_t* __restrict__ slots, const int32_t* __restrict__ cu_seqlens,
                             uint8_t* __restrict__ out_hidden, int64_t* __restrict__ out_mask,
                             int64_t* __restrict__ out_index) {
  for (int64_t token = blockIdx.x; token < B * S; token += gridDim.x) {
    const int32_t slot = slots[token];
    if (slot < 0) continue;
    const int64_t b = token / S;
    const int64_t s = token - b * S;
    // Padded: row b * K + slot; packed (cu_seqlens given): row cu_seqlens[b] + slot.
    const int64_t row = cu_seqlens ? cu_seqlens[b] + slot : b * K + slot;
    CopyRow<V>(hidden + token * row_bytes, out_hidden + row * row_bytes, row_bytes);
    if (threadIdx.x == 0) {
      out_index[row] = s;
      if (out_mask) out_mask[row] = 1;
    }
  }
}

__global__ void CumulativeLengthsKernel(const int64_t* counts, int64_t B, int32_t* cu_seqlens) {
  int64_t total = 0;  // B is a batch size: a single thread is enough
  cu_seqlens[0] = 0;
  for (int64_t b = 0; b < B; ++b) {
    total += counts[b];
    cu_seqlens[b + 1] = static_cast<int32_t>(total);
  }
}

cudaError_t LaunchGather(const void* hidden, int64_t B, int64_t S, size_t row_bytes, int64_t K,
                         const int32_t* slots, const int32_t* cu, void* out_hidden, int64_t* out_mask,
                         int64_t* out_index, cudaStream_t stream) {
  const int64_t tokens = B * S;
  if (tokens == 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(tokens < (1 << 20) ? tokens : (1 << 20));
  const auto* src = static_cast<const uint8_t*>(hidden);
  auto* dst = static_cast<uint8_t*>(out_hidden);
  // ORT allocations are at least 16-byte aligned, so the row size alone picks the widest copy.
  if (row_bytes % 16 == 0) {
    GatherKernel<uint4><<<grid, 128, 0, stream>>>(src, B, S, row_bytes, K, slots, cu, dst, out_mask, out_index);
  } else if (row_bytes % 4 == 0) {
    GatherKernel<uint32_t><<<grid, 128, 0, stream>>>(src, B, S, row_bytes, K, slots, cu, dst, out_mask, out_index);
  } else {
    GatherKernel<uint16_t><<<grid, 128, 0, stream>>>(src, B, S, row_bytes, K, slots, cu, dst, out_mask, out_index);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchSelect(const KeepRule& rule, const float* scores, const int64_t* mask, int64_t B, int64_t S,
                         int32_t* slots, int64_t* counts, cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  SelectKernel<<<static_cast<unsigned>(B), kThreads, 0, stream>>>(rule, scores, mask, S, slots, counts);
  return cudaGetLastError();
}

cudaError_t LaunchGatherPadded(const void* hidden, int64_t B, int64_t S, size_t row_bytes, int64_t K,
                               const int32_t* slots, void* out_hidden, int64_t* out_mask, int64_t* out_index,
                               cudaStream_t stream) {
  return LaunchGather(hidden, B, S, row_bytes, K, slots, nullptr, out_hidden, out_mask, out_index, stream);
}

cudaError_t LaunchCumulativeLengths(const int64_t* counts, int64_t B, int32_t* cu_seqlens, cudaStream_t stream) {
  CumulativeLengthsKernel<<<1, 1, 0, stream>>>(counts, B, cu_seqlens);
  return cudaGetLastError();
}

cudaError_t LaunchGatherPacked(const void* hidden, int64_t B, int64_t S, size_t row_bytes, const int32_t* slots,
                               const int32_t* cu_seqlens, void* out_hidden, int64_t* out_index, cudaStream_t stream) {
  return LaunchGather(hidden, B, S, row_bytes, 0, slots, cu_seqlens, out_hidden, nullptr, out_index, stream);
}

}  // namespace cuda
}  // namespace topk_gather
}  // namespace trexport
