// Launchers of the TopKGather CUDA kernels (topk_gather_cuda.cu). Raw device pointers, ORT's stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "topk_gather/topk_gather.h"

namespace trexport {
namespace topk_gather {
namespace cuda {

// Per row b: slots[b, s] = output slot of token s (-1 if dropped); counts[b] = kept tokens.
// scores/mask/slots: [B, S]; counts: [B]. One block per row.
cudaError_t LaunchSelect(const KeepRule& rule, const float* scores, const int64_t* mask, int64_t B, int64_t S,
                         int32_t* slots, int64_t* counts, cudaStream_t stream);

// Padded gather: out_hidden[b, slot, :] = hidden[b, s, :], out_mask[b, slot] = 1, out_index[b, slot] = s
// for every kept token. The caller zero-fills the three outputs first (they are [B, K, H], [B, K], [B, K]).
cudaError_t LaunchGatherPadded(const void* hidden, int64_t B, int64_t S, size_t row_bytes, int64_t K,
                               const int32_t* slots, void* out_hidden, int64_t* out_mask, int64_t* out_index,
                               cudaStream_t stream);

// cu_seqlens[0] = 0, cu_seqlens[b + 1] = cu_seqlens[b] + counts[b] (int32, [B + 1]).
cudaError_t LaunchCumulativeLengths(const int64_t* counts, int64_t B, int32_t* cu_seqlens, cudaStream_t stream);

// Packed gather: out_hidden[cu[b] + slot, :] = hidden[b, s, :], out_index[cu[b] + slot] = s.
cudaError_t LaunchGatherPacked(const void* hidden, int64_t B, int64_t S, size_t row_bytes, const int32_t* slots,
                               const int32_t* cu_seqlens, void* out_hidden, int64_t* out_index, cudaStream_t stream);

}  // namespace cuda
}  // namespace topk_gather
}  // namespace trexport
