// TopKGather / TopKGatherPacked (domain ai.trexport, since_version 1).
//
// Keeps, per batch row, the alive tokens selected by a keep rule and gathers their hidden states in
// original order. Contract: docs/custom_ops.md. This header holds what the CPU and CUDA kernels share:
// the keep rule (host/device inline), the op and kernel structs, and the input checks.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define TREXPORT_HD __host__ __device__ __forceinline__
#else
#define TREXPORT_HD inline
#endif

namespace trexport {
namespace topk_gather {

// ---------------------------------------------------------------------------------------------------
// Keep rule (shared by host and device code; no ORT types)
// ---------------------------------------------------------------------------------------------------

enum class KeepMode : int32_t { kThreshold = 0, kEta = 1, kRatio = 2, kCount = 3 };

struct KeepRule {
  KeepMode mode = KeepMode::kThreshold;
  float value = 0.0f;
  bool keep_cls = true;
};

// True for "ratio" and "count": a quota of top-ranked tokens, not a score cutoff.
TREXPORT_HD bool IsRankMode(KeepMode mode) { return mode == KeepMode::kRatio || mode == KeepMode::kCount; }

// Score cutoff of "threshold" (value) and "eta" (value / n_alive, in float32; AdapLeR sec. 3).
TREXPORT_HD float ScoreCutoff(const KeepRule& rule, int64_t n_alive) {
  return rule.mode == KeepMode::kEta ? rule.value / static_cast<float>(n_alive) : rule.value;
}

// Quota of "ratio" (ceil(value * n_alive) in float32) and "count" (int(value)), clamped to [0, n_alive].
// keep_cls is not applied here (see RowPlan).
TREXPORT_HD int64_t RankQuota(const KeepRule& rule, int64_t n_alive) {
  if (n_alive <= 0) return 0;
  const float q = rule.mode == KeepMode::kRatio ? ceilf(rule.value * static_cast<float>(n_alive))
                                                : truncf(rule.value);
  if (!(q > 0.0f)) return 0;  // also NaN
  if (q >= static_cast<float>(n_alive)) return n_alive;
  return static_cast<int64_t>(q);
}

// Ranking of ratio/count modes: higher score first, NaN below every number, ties -> lower position.
TREXPORT_HD bool RanksBefore(float score_a, int64_t pos_a, float score_b, int64_t pos_b) {
  const bool nan_a = score_a != score_a;
  const bool nan_b = score_b != score_b;
  if (nan_a != nan_b) return nan_b;
  if (!nan_a && score_a != score_b) return score_a > score_b;
  return pos_a < pos_b;
}

// What one row keeps, decided from its alive count before looking at individual tokens.
struct RowPlan {
  bool cls;        // position 0 is alive and kept unconditionally (keep_cls)
  bool rank_mode;  // ratio/count: keep the `rest` best candidates; else: score >= cutoff
  float cutoff;    // threshold/eta only
  int64_t rest;    // ratio/count only: slots left for non-CLS candidates
  bool keep_all;   // ratio/count only: every alive token is kept
};

// `alive0`: mask[b, 0] != 0 (false when S == 0).
TREXPORT_HD RowPlan PlanRow(const KeepRule& rule, int64_t n_alive, bool alive0) {
  RowPlan p;
  p.cls = rule.keep_cls && alive0;
  p.rank_mode = IsRankMode(rule.mode);
  p.cutoff = 0.0f;
  p.rest = 0;
  p.keep_all = false;
  if (n_alive <= 0) return p;
  if (p.rank_mode) {
    int64_t quota = RankQuota(rule, n_alive);
    if (p.cls && quota < 1) quota = 1;  // CLS counts toward the quota but is always kept
    p.rest = quota - (p.cls ? 1 : 0);
    p.keep_all = quota >= n_alive;
  } else {
    p.cutoff = ScoreCutoff(rule, n_alive);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------
// CPU core (no ORT types; also driven by the C++ test under ASan/UBSan)
// ---------------------------------------------------------------------------------------------------

// Writes row b's kept positions, ascending, to `kept` (capacity S) and returns their count.
// scores/mask: one row of S values. Uses a thread-local scratch buffer (no per-call heap churn).
int64_t SelectRow(const KeepRule& rule, const float* scores, const int64_t* mask, int64_t S, int32_t* kept);

// Copies the kept rows of one batch row: dst[j, :] = src[kept[j], :] for j < count (row_bytes each).
void GatherRows(const uint8_t* src, const int32_t* kept, int64_t count, size_t row_bytes, uint8_t* dst);

}  // namespace topk_gather
}  // namespace trexport

// ---------------------------------------------------------------------------------------------------
// ORT glue (host only)
// ---------------------------------------------------------------------------------------------------
#if !defined(__CUDACC__)
#include <memory>
#include <mutex>

#include "onnxruntime_cxx_api.h"

// Returns the OrtStatus of `expr` from the enclosing function when it is an error.
#define TREXPORT_RETURN_IF_ERROR(expr)      \
  do {                                      \
    OrtStatusPtr _status = (expr);          \
    if (_status != nullptr) return _status; \
  } while (0)

namespace trexport {
namespace topk_gather {

enum class Device { kCpu, kCuda };

// One registered (op type, EP, element type) combination.
struct OpVariant {
  bool packed;                     // TopKGatherPacked when true
  Device device;
  ONNXTensorElementDataType type;  // of hidden_states: FLOAT or FLOAT16
};

const char* OpName(bool packed);

// Host view of the three inputs after validation.
struct Inputs {
  const void* hidden;  // [B,S,H], element size elem_size
  const float* scores;   // [B,S]
  const int64_t* mask;   // [B,S]
  int64_t B, S, H;
  size_t elem_size;
};

// Reads and validates the inputs; the error names the actual shapes.
OrtStatusPtr ReadInputs(const OrtApi& api, OrtKernelContext* ctx, const OpVariant& variant, Inputs* out);

// Allocates output `index` with `dims` and returns its data pointer.
OrtStatusPtr AllocOutput(const OrtApi& api, OrtKernelContext* ctx, size_t index, const int64_t* dims,
                         size_t rank, void** data);

struct CudaState;  // pinned host buffer for the kept counts (topk_gather_cuda.cc)

struct TopKGatherKernel {
  TopKGatherKernel(const OrtApi& api, const KeepRule& rule, const OpVariant& variant);
  ~TopKGatherKernel();
  OrtStatusPtr ComputeV2(OrtKernelContext* ctx);

  const OrtApi& api;
  KeepRule rule;
  OpVariant variant;
  CudaState* cuda = nullptr;  // created on first CUDA compute
  std::mutex cuda_mutex;
};

OrtStatusPtr ComputeCpu(TopKGatherKernel& kernel, OrtKernelContext* ctx);
OrtStatusPtr ComputeCuda(TopKGatherKernel& kernel, OrtKernelContext* ctx);  // error if built without CUDA
void ReleaseCudaState(CudaState* state);

struct TopKGatherOp : Ort::CustomOpBase<TopKGatherOp, TopKGatherKernel, /*WithStatus=*/true> {
  TopKGatherOp(const OrtApi& api, const OpVariant& variant);

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return OpName(variant_.packed); }
  const char* GetExecutionProviderType() const;
  size_t GetInputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetInputType(size_t index) const;
  size_t GetOutputTypeCount() const { return 4; }
  ONNXTensorElementDataType GetOutputType(size_t index) const;

  const OrtApi& api_;
  OpVariant variant_;
};

}  // namespace topk_gather
}  // namespace trexport
#endif  // !__CUDACC__
