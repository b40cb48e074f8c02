// C++ test of the TopKGather CPU core (SelectRow, GatherRows) against a brute-force reference.
// Built with -fsanitize=address,undefined by scripts/asan_custom_ops.sh; plain main, exits 1 on failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "topk_gather/topk_gather.h"

using trexport::topk_gather::GatherRows;
using trexport::topk_gather::KeepMode;
using trexport::topk_gather::KeepRule;
using trexport::topk_gather::SelectRow;

namespace {

int failures = 0;

#define EXPECT(cond, ...)                                       \
  do {                                                          \
    if (!(cond)) {                                              \
      std::fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                        \
      std::fprintf(stderr, "\n");                               \
      ++failures;                                               \
    }                                                           \
  } while (0)

// Straightforward restatement of the contract (docs/custom_ops.md), independent of SelectRow's code path.
std::vector<int32_t> Reference(const KeepRule& r, const std::vector<float>& sc, const std::vector<int64_t>& m) {
  const int64_t S = static_cast<int64_t>(sc.size());
  std::vector<int32_t> alive;
  for (int64_t s = 0; s < S; ++s)
    if (m[s] != 0) alive.push_back(static_cast<int32_t>(s));
  const int64_t n = static_cast<int64_t>(alive.size());
  const bool cls = r.keep_cls && S > 0 && m[0] != 0;
  std::vector<int32_t> kept;
  if (n == 0) return kept;
  if (r.mode == KeepMode::kThreshold || r.mode == KeepMode::kEta) {
    const float cut = r.mode == KeepMode::kEta ? r.value / static_cast<float>(n) : r.value;
    for (int32_t s : alive)
      if ((cls && s == 0) || sc[s] >= cut) kept.push_back(s);
    return kept;
  }
  double q = r.mode == KeepMode::kRatio ? std::ceil(static_cast<float>(r.value * static_cast<float>(n)))
                                        : std::trunc(static_cast<double>(r.value));
  if (std::isnan(q) || q < 0) q = 0;
  int64_t quota = static_cast<int64_t>(std::min<double>(q, static_cast<double>(n)));
  std::vector<int32_t> order;
  for (int32_t s : alive)
    if (!(cls && s == 0)) order.push_back(s);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const bool na = std::isnan(sc[a]), nb = std::isnan(sc[b]);
    if (na != nb) return nb;
    return !na && sc[a] > sc[b];
  });
  if (cls) {
    kept.push_back(0);
    quota = std::max<int64_t>(quota, 1) - 1;
  }
  for (int64_t i = 0; i < quota; ++i) kept.push_back(order[i]);
  std::sort(kept.begin(), kept.end());
  return kept;
}

void RandomSelectTests() {
  std::mt19937 rng(1234);
  const KeepMode modes[] = {KeepMode::kThreshold, KeepMode::kEta, KeepMode::kRatio, KeepMode::kCount};
  for (int iter = 0; iter < 4000; ++iter) {
    const int64_t S = std::uniform_int_distribution<int>(0, 70)(rng);
    std::vector<float> sc(S);
    std::vector<int64_t> m(S);
    const int style = iter % 4;  // 0: distinct, 1: heavy ties, 2: with NaN/inf, 3: padding suffix
    for (int64_t s = 0; s < S; ++s) {
      sc[s] = style == 1 ? static_cast<float>(std::uniform_int_distribution<int>(0, 3)(rng)) * 0.25f
                         : std::uniform_real_distribution<float>(-1.f, 1.f)(rng);
      if (style == 2 && s % 5 == 1) sc[s] = NAN;
      if (style == 2 && s % 7 == 2) sc[s] = -INFINITY;
      m[s] = std::uniform_int_distribution<int>(0, 4)(rng) != 0;
    }
    if (style == 3) {
      for (int64_t s = S / 2; s < S; ++s) m[s] = 0;
    }
    KeepRule r;
    r.mode = modes[iter % 4 == 0 ? (iter / 4) % 4 : std::uniform_int_distribution<int>(0, 3)(rng)];
    r.keep_cls = (iter / 2) % 2 == 0;
    switch (r.mode) {
      case KeepMode::kThreshold: r.value = std::uniform_real_distribution<float>(-1.2f, 1.2f)(rng); break;
      case KeepMode::kEta: r.value = std::uniform_real_distribution<float>(-5.f, 5.f)(rng); break;
      case KeepMode::kRatio: r.value = std::uniform_real_distribution<float>(-0.2f, 1.3f)(rng); break;
      case KeepMode::kCount: r.value = std::uniform_real_distribution<float>(-3.f, 80.f)(rng); break;
    }
    std::vector<int32_t> kept(S + 1, -7);
    const int64_t c = SelectRow(r, sc.data(), m.data(), S, kept.data());
    const std::vector<int32_t> want = Reference(r, sc, m);
    EXPECT(c == static_cast<int64_t>(want.size()), "iter %d mode %d S %lld: count %lld want %zu", iter,
           static_cast<int>(r.mode), static_cast<long long>(S), static_cast<long long>(c), want.size());
    if (c == static_cast<int64_t>(want.size())) {
      EXPECT(std::equal(want.begin(), want.end(), kept.begin()), "iter %d: kept positions differ", iter);
    }
    EXPECT(kept[S] == -7, "iter %d: wrote past the row", iter);
  }
}

void EdgeCases() {
  // Nothing alive: nothing kept, even with keep_cls.
  {
    KeepRule r{KeepMode::kCount, 5.f, true};
    float sc[3] = {1, 2, 3};
    int64_t m[3] = {0, 0, 0};
    int32_t kept[3];
    EXPECT(SelectRow(r, sc, m, 3, kept) == 0, "empty row");
  }
  // Quota 0 with keep_cls: CLS alone survives.
  {
    KeepRule r{KeepMode::kRatio, 0.f, true};
    float sc[4] = {-9, 5, 6, 7};
    int64_t m[4] = {1, 1, 1, 1};
    int32_t kept[4];
    EXPECT(SelectRow(r, sc, m, 4, kept) == 1 && kept[0] == 0, "cls only");
  }
  // Ties: lower position wins.
  {
    KeepRule r{KeepMode::kCount, 2.f, false};
    float sc[5] = {1, 1, 1, 1, 1};
    int64_t m[5] = {1, 1, 1, 1, 1};
    int32_t kept[5];
    EXPECT(SelectRow(r, sc, m, 5, kept) == 2 && kept[0] == 0 && kept[1] == 1, "ties");
  }
  // S == 0.
  {
    KeepRule r{KeepMode::kThreshold, 0.f, true};
    EXPECT(SelectRow(r, nullptr, nullptr, 0, nullptr) == 0, "S == 0");
  }
}

void GatherTest() {
  const int64_t S = 6, H = 5;
  std::vector<float> src(S * H);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
  const int32_t kept[3] = {0, 2, 5};
  std::vector<float> dst(3 * H + 1, -1.f);
  GatherRows(reinterpret_cast<const uint8_t*>(src.data()), kept, 3, H * sizeof(float),
             reinterpret_cast<uint8_t*>(dst.data()));
  for (int j = 0; j < 3; ++j)
    for (int h = 0; h < H; ++h) EXPECT(dst[j * H + h] == src[kept[j] * H + h], "gather %d %d", j, h);
  EXPECT(dst[3 * H] == -1.f, "gather wrote past the end");
}

}  // namespace

int main() {
  RandomSelectTests();
  EdgeCases();
  GatherTest();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("test_topk_gather_cpu: all checks passed\n");
  return 0;
}
