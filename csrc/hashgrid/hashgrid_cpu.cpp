// CPU kernels (OpenMP). Deterministic: no float sum depends on thread scheduling.
#include <algorithm>

#include "common/dispatch.h"
#include "hashgrid/hashgrid.h"
#include "hashgrid/hashgrid_math.h"

namespace morphbias {

namespace {

// Points per block. Within a block the loops run level by level, so a thread works on one level's
// table (4 MB at the default 2^19 entries, F = 2) at a time: 65536 points put about 8 corner reads on
// every cache line of that table, which then stays in L3 for the whole block, instead of every read
// going to DRAM as it does when points sweep all 57 MB of levels in turn (measured: 2^19 forward,
// 2 threads, 256-point blocks 425 ms, 65536-point blocks 63 ms with prefetching; bench/RESULTS.md).
constexpr int64_t kMaxBlock = 65536;
constexpr int64_t kMinBlock = 1024;

// Gather kernels split points over threads: blocks no larger than n / threads keep every thread busy.
// Block size never changes a result: each point's outputs are computed alone, levels in order.
int64_t gather_block(int64_t n, int threads) {
  const int64_t per_thread = (n + threads - 1) / std::max(threads, 1);
  return std::max(kMinBlock, std::min(kMaxBlock, per_thread));
}

// Points located per round before any table is read: their corner loads are then issued as
// prefetches together, so many cache misses are in flight at once instead of the few that the
// out-of-order window reaches (the large tables are latency bound, see bench/RESULTS.md).
constexpr int kChunk = 16;

template <typename T, int D, int F, typename Table>
void prefetch_corners(const uint32_t* idx, const Table* table) {
  MB_UNROLL
  for (int c = 0; c < (1 << D); ++c) __builtin_prefetch(table + static_cast<int64_t>(idx[c]) * F);
}

// Points lo..hi-1 of level l in order: locate kChunk points and prefetch their corners, then hand each
// located point to consume(i, corners). `table` is level l's slice of the array the corners index.
template <typename T, int D, int F, bool DERIV, typename Table, typename Consume>
void for_each_located(const HashGridConfig& c, const LevelTable& lv, int l, int64_t lo, int64_t hi, const T* x,
                      const Table* table, Consume&& consume) {
  LevelCorners<T, D, DERIV> lc[kChunk];
  for (int64_t i0 = lo; i0 < hi; i0 += kChunk) {
    const int m = static_cast<int>(std::min<int64_t>(kChunk, hi - i0));
    for (int k = 0; k < m; ++k) {
      lc[k] = LevelCorners<T, D, DERIV>(lv, l, c.interpolation, x + (i0 + k) * D);
      prefetch_corners<T, D, F>(lc[k].idx, table);
    }
    for (int k = 0; k < m; ++k) consume(i0 + k, lc[k]);
  }
}

template <typename T, int D, int F, bool DERIV>
void fwd_level_range(const HashGridConfig& c, const LevelTable& lv, int l, int64_t lo, int64_t hi, const T* x,
                     const T* params, const T* dir, T* y, T* J, T* jvp) {
  const int LF = lv.n_levels * F;
  const T* table = params + lv.offset[l] * F;
  for_each_located<T, D, F, DERIV>(c, lv, l, lo, hi, x, table, [&](int64_t i, const LevelCorners<T, D, DERIV>& lc) {
    fwd_gather<T, D, F, DERIV>(lc, l, table, dir ? dir + i * D : nullptr, y ? y + i * LF : nullptr,
                               J ? J + i * LF * D : nullptr, jvp ? jvp + i * LF : nullptr);
  });
}

template <typename T, int D, int F>
void fwd_impl(const HashGridConfig& c, const LevelTable& lv, Launch run, int64_t n, const T* x, const T* params,
              const T* dir, T* y, T* J, T* jvp) {
  const int L = lv.n_levels;
  const bool deriv = J || jvp;
  const int64_t block = gather_block(n, run.num_threads);
  const int64_t n_blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) num_threads(run.num_threads)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * block, hi = std::min(n, lo + block);
    for (int l = 0; l < L; ++l) {
      if (deriv) fwd_level_range<T, D, F, true>(c, lv, l, lo, hi, x, params, dir, y, J, jvp);
      else fwd_level_range<T, D, F, false>(c, lv, l, lo, hi, x, params, nullptr, y, nullptr, nullptr);
    }
  }
}

template <typename T, int D, int F>
void input_grad_impl(const HashGridConfig& c, const LevelTable& lv, Launch run, int64_t n, const T* x,
                     const T* params, Cotangent cot, T* dL_dx) {
  const int L = lv.n_levels, LF = L * F;
  const int64_t block = gather_block(n, run.num_threads);
  const int64_t n_blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) num_threads(run.num_threads)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * block, hi = std::min(n, lo + block);
    for (int64_t i = lo; i < hi; ++i)
      for (int e = 0; e < D; ++e) dL_dx[i * D + e] = T(0);
    for (int l = 0; l < L; ++l) {  // levels in order for every point: a fixed summation order
      const T* table = params + lv.offset[l] * F;
      for_each_located<T, D, F, true>(c, lv, l, lo, hi, x, table, [&](int64_t i, const LevelCorners<T, D, true>& lc) {
        input_grad_gather<T, D, F>(lc, l, table, point_cot<T, D>(cot, i, LF), dL_dx + i * D);
      });
    }
  }
}

template <typename T, int D, int F, bool DERIV>
void param_grad_level_range(const HashGridConfig& c, const LevelTable& lv, int l, int64_t lo, int64_t hi,
                            const T* x, Cotangent cot, T* grad) {
  const int LF = lv.n_levels * F;
  T* table = grad + lv.offset[l] * F;
  auto add = [table](int64_t entry, const T* v) {
    T* gp = table + entry * F;
    MB_UNROLL
    for (int f = 0; f < F; ++f) gp[f] += v[f];
  };
  // Points in order: the sum into each entry has a fixed order.
  for_each_located<T, D, F, DERIV>(c, lv, l, lo, hi, x, table, [&](int64_t i, const LevelCorners<T, D, DERIV>& lc) {
    param_grad_scatter<T, D, F, DERIV>(lc, l, 0, point_cot<T, D>(cot, i, LF), add);
  });
}

template <typename T, int D, int F>
void param_grad_impl(const HashGridConfig& c, const LevelTable& lv, Launch run, int64_t n, const T* x,
                     Cotangent cot, T* grad) {
  const int L = lv.n_levels;
  const int64_t n_blocks = (n + kMaxBlock - 1) / kMaxBlock;
  const bool deriv = cot.B || (cot.b && cot.g);
  // Levels own disjoint parameter ranges, so giving each level of a block to one thread needs no atomics,
  // and each entry receives its points' contributions in point order whatever the thread count.
#pragma omp parallel num_threads(run.num_threads)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * kMaxBlock, hi = std::min(n, lo + kMaxBlock);
#pragma omp for schedule(dynamic, 1)
    for (int l = 0; l < L; ++l) {
      if (deriv) param_grad_level_range<T, D, F, true>(c, lv, l, lo, hi, x, cot, grad);
      else param_grad_level_range<T, D, F, false>(c, lv, l, lo, hi, x, cot, grad);
    }
  }
}

template <typename T, int D>
void corner_index_impl(const LevelTable& lv, Launch run, int64_t n, const T* x, int64_t* out) {
  const int L = lv.n_levels;
#pragma omp parallel for schedule(static) num_threads(run.num_threads)
  for (int64_t i = 0; i < n; ++i)
    for (int l = 0; l < L; ++l) corner_index_point_level<T, D>(lv, l, x + i * D, out + (i * L + l) * (1 << D));
}

}  // namespace

void hashgrid_fwd_cpu(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                      const void* x, const void* params, const void* dir, void* y, void* J, void* jvp) {
  if (n == 0) return;
  dispatch_t_d_f(dt, c.n_input_dims, c.n_features_per_level, [&](auto t, auto d, auto f) {
    using T = typename decltype(t)::type;
    fwd_impl<T, decltype(d)::value, decltype(f)::value>(c, lv, run, n, static_cast<const T*>(x),
                                                         static_cast<const T*>(params), static_cast<const T*>(dir),
                                                         static_cast<T*>(y), static_cast<T*>(J), static_cast<T*>(jvp));
  });
}

void hashgrid_input_grad_cpu(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                             const void* x, const void* params, Cotangent cot, void* dL_dx) {
  if (n == 0) return;
  dispatch_t_d_f(dt, c.n_input_dims, c.n_features_per_level, [&](auto t, auto d, auto f) {
    using T = typename decltype(t)::type;
    input_grad_impl<T, decltype(d)::value, decltype(f)::value>(
        c, lv, run, n, static_cast<const T*>(x), static_cast<const T*>(params), cot, static_cast<T*>(dL_dx));
  });
}

void hashgrid_param_grad_cpu(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                             const void* x, Cotangent cot, void* dL_dparams) {
  if (n == 0) return;
  dispatch_t_d_f(dt, c.n_input_dims, c.n_features_per_level, [&](auto t, auto d, auto f) {
    using T = typename decltype(t)::type;
    param_grad_impl<T, decltype(d)::value, decltype(f)::value>(c, lv, run, n, static_cast<const T*>(x), cot,
                                                                static_cast<T*>(dL_dparams));
  });
}

void hashgrid_corner_index_cpu(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                               const void* x, int64_t* index) {
  if (n == 0) return;
  dispatch_t_d_f(dt, c.n_input_dims, 1, [&](auto t, auto d, auto) {
    using T = typename decltype(t)::type;
    corner_index_impl<T, decltype(d)::value>(lv, run, n, static_cast<const T*>(x), index);
  });
}

}  // namespace morphbias
