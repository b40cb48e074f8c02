// CPU kernel of TopKGather / TopKGatherPacked: select per row, then copy, both parallel over the batch.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <vector>

#include "topk_gather/topk_gather.h"

namespace trexport {
namespace topk_gather {

int64_t SelectRow(const KeepRule& rule, const float* scores, const int64_t* mask, int64_t S, int32_t* kept) {
  int64_t n_alive = 0;
  for (int64_t s = 0; s < S; ++s) n_alive += mask[s] != 0;
  const RowPlan plan = PlanRow(rule, n_alive, S > 0 && mask[0] != 0);
  if (n_alive == 0) return 0;

  int64_t count = 0;
  if (!plan.rank_mode || plan.keep_all) {
    for (int64_t s = 0; s < S; ++s) {
      if (mask[s] == 0) continue;
      if (plan.keep_all || (plan.cls && s == 0) || scores[s] >= plan.cutoff) kept[count++] = static_cast<int32_t>(s);
    }
    return count;
  }

  if (plan.cls) kept[count++] = 0;
  if (plan.rest == 0) return count;
  // Candidates: alive tokens other than a kept CLS. Scratch grows to the largest S seen, then is reused.
  thread_local std::vector<int32_t> candidates;
  candidates.clear();
  for (int64_t s = plan.cls ? 1 : 0; s < S; ++s) {
    if (mask[s] != 0) candidates.push_back(static_cast<int32_t>(s));
  }
  auto before = [scores](int32_t a, int32_t b) { return RanksBefore(scores[a], a, scores[b], b); };
  const auto nth = candidates.begin() + plan.rest;  // rest < candidates.size() since !keep_all
  std::nth_element(candidates.begin(), nth, candidates.end(), before);
  std::sort(candidates.begin(), nth);  // back to original order (ascending position)
  for (auto it = candidates.begin(); it != nth; ++it) kept[count++] = *it;
  return count;
}

void GatherRows(const uint8_t* src, const int32_t* kept, int64_t count, size_t row_bytes, uint8_t* dst) {
  for (int64_t j = 0; j < count; ++j) {
    std::memcpy(dst + static_cast<size_t>(j) * row_bytes, src + static_cast<size_t>(kept[j]) * row_bytes, row_bytes);
  }
}

namespace {


// Everything the per-row workers need; passed through KernelContext_ParallelFor's user data.
struct Job {
  const KeepRule* rule;
  const Inputs* in;
  int32_t* kept;      // [B, S] kept positions, row b valid in [0, counts[b])
  int64_t* counts;    // [B] (the kept_counts output)
  int64_t K;          // padded: slots per row
  const int32_t* cu;  // packed: row offsets [B+1]
  uint8_t* out_hidden;
  int64_t* out_mask;  // padded only
  int64_t* out_index;
  std::atomic<bool> failed{false};
};

void SelectWorker(void* data, size_t b) {
  Job& job = *static_cast<Job*>(data);
  const int64_t S = job.in->S;
  try {
    job.counts[b] = SelectRow(*job.rule, job.in->scores + b * S, job.in->mask + b * S, S, job.kept + b * S);
  } catch (...) {  // only std::bad_alloc from the scratch buffer
    job.counts[b] = 0;
    job.failed = true;
  }
}

void FillPaddedWorker(void* data, size_t b) {
  Job& job = *static_cast<Job*>(data);
  const Inputs& in = *job.in;
  const size_t row_bytes = static_cast<size_t>(in.H) * in.elem_size;
  const int32_t* kept = job.kept + b * in.S;
  const int64_t count = job.counts[b];
  uint8_t* dst = job.out_hidden + b * job.K * row_bytes;
  GatherRows(static_cast<const uint8_t*>(in.hidden) + b * in.S * row_bytes, kept, count, row_bytes, dst);
  std::memset(dst + count * row_bytes, 0, (job.K - count) * row_bytes);
  int64_t* mask = job.out_mask + b * job.K;
  int64_t* index = job.out_index + b * job.K;
  for (int64_t j = 0; j < job.K; ++j) {
    mask[j] = j < count;
    index[j] = j < count ? kept[j] : 0;
  }
}

void FillPackedWorker(void* data, size_t b) {
  Job& job = *static_cast<Job*>(data);
  const Inputs& in = *job.in;
  const size_t row_bytes = static_cast<size_t>(in.H) * in.elem_size;
  const int32_t* kept = job.kept + b * in.S;
  const int64_t count = job.counts[b];
  const int64_t offset = job.cu[b];
  GatherRows(static_cast<const uint8_t*>(in.hidden) + b * in.S * row_bytes, kept, count, row_bytes,
             job.out_hidden + offset * row_bytes);
  for (int64_t j = 0; j < count; ++j) job.out_index[offset + j] = kept[j];
}

OrtStatusPtr ForEachRow(const OrtApi& api, OrtKernelContext* ctx, void (*fn)(void*, size_t), Job* job) {
  const size_t rows = static_cast<size_t>(job->in->B);
  if (rows <= 1) {
    for (size_t b = 0; b < rows; ++b) fn(job, b);
    return nullptr;
  }
  return api.KernelContext_ParallelFor(ctx, fn, rows, 0, job);
}

}  // namespace

OrtStatusPtr ComputeCpu(TopKGatherKernel& kernel, OrtKernelContext* ctx) {
  const OrtApi& api = kernel.api;
  const bool packed = kernel.variant.packed;
  Inputs in;
  TREXPORT_RETURN_IF_ERROR(ReadInputs(api, ctx, kernel.variant, &in));
  if (in.S > std::numeric_limits<int32_t>::max()) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, "TopKGather: sequence length does not fit int32");
  }

  Job job;
  job.rule = &kernel.rule;
  job.in = &in;
  const int64_t counts_dims[1] = {in.B};
  void* counts = nullptr;
  TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 3, counts_dims, 1, &counts));
  job.counts = static_cast<int64_t*>(counts);
  // Kept positions of every row; one buffer per calling thread, grown at most once per new maximum.
  thread_local std::vector<int32_t> kept;
  kept.resize(static_cast<size_t>(in.B * in.S));
  job.kept = kept.data();

  TREXPORT_RETURN_IF_ERROR(ForEachRow(api, ctx, &SelectWorker, &job));
  if (job.failed) return api.CreateStatus(ORT_FAIL, "TopKGather: out of memory for scratch buffers");

  void* out[3] = {nullptr, nullptr, nullptr};
  if (!packed) {
    int64_t K = 0;
    for (int64_t b = 0; b < in.B; ++b) K = std::max(K, job.counts[b]);
    const int64_t dims[3] = {in.B, K, in.H};
    TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 0, dims, 3, &out[0]));
    TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 1, dims, 2, &out[1]));
    TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 2, dims, 2, &out[2]));
    job.K = K;
    job.out_hidden = static_cast<uint8_t*>(out[0]);
    job.out_mask = static_cast<int64_t*>(out[1]);
    job.out_index = static_cast<int64_t*>(out[2]);
    return ForEachRow(api, ctx, &FillPaddedWorker, &job);
  }

  const int64_t cu_dims[1] = {in.B + 1};
  TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 1, cu_dims, 1, &out[1]));
  int32_t* cu = static_cast<int32_t*>(out[1]);
  int64_t total = 0;
  cu[0] = 0;
  for (int64_t b = 0; b < in.B; ++b) {
    total += job.counts[b];
    if (total > std::numeric_limits<int32_t>::max()) {
      return api.CreateStatus(ORT_INVALID_ARGUMENT, "TopKGatherPacked: total kept tokens do not fit int32");
    }
    cu[b + 1] = static_cast<int32_t>(total);
  }
  const int64_t dims[2] = {total, in.H};
  TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 0, dims, 2, &out[0]));
  TREXPORT_RETURN_IF_ERROR(AllocOutput(api, ctx, 2, dims, 1, &out[2]));
  job.cu = cu;
  job.out_hidden = static_cast<uint8_t*>(out[0]);
  job.out_index = static_cast<int64_t*>(out[2]);
  return ForEachRow(api, ctx, &FillPackedWorker, &job);
}

}  // namespace topk_gather
}  // namespace trexport
