// CPU kernels (OpenMP). Deterministic: no float sum depends on thread scheduling.
#include <algorithm>
#include <memory>

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

// Outputs of one block are staged level-major: a level's pass then writes one contiguous stream (F values,
// F*D Jacobian entries per point) instead of a few bytes into every point's row (128 B of y, 384 B of J in
// 3-D at L = 16, F = 2), which, once a block's rows outgrow L2, costs a line fill and a write-back per row per
// level. One copy per block then moves the staged values to the point-major outputs. Measured on the 2-core
// machine (bench/RESULTS.md, "CPU speed: staged blocks"): the 3-D forward with dy/dx at 2^15 entries went
// from 186 to 105 ms. Staging caps the block so that a thread's scratch stays under kStageBytes: a whole
// 64K-point block of float32 3-D y + J (512 B per point); float64 halves the block. A 16 MB cap cost the 2-D
// forward with dy/dx 30% (block 43K instead of 64K).
constexpr int64_t kStageBytes = int64_t(32) << 20;

template <typename T, int D, int F, bool DERIV>
void fwd_level_range(const HashGridConfig& c, const LevelTable& lv, int l, int64_t lo, int64_t hi, const T* x,
                     const T* params, const T* dir, T* ys, T* Js, T* jvps) {
  const T* table = params + lv.offset[l] * F;
  for_each_located<T, D, F, DERIV>(c, lv, l, lo, hi, x, table, [&](int64_t i, const LevelCorners<T, D, DERIV>& lc) {
    const int64_t k = i - lo;  // row k of this level's stream, written as level 0 of a row of width F
    fwd_gather<T, D, F, DERIV>(lc, 0, table, dir ? dir + i * D : nullptr, ys ? ys + k * F : nullptr,
                               Js ? Js + k * F * D : nullptr, jvps ? jvps + k * F : nullptr);
  });
}

// Per-thread scratch for the staged blocks, uninitialised (every element is written before it is read) and
// kept for the thread's next call: a fresh allocation is mapped and paged in anew on every call, which added
// 2.5 ms to a 10 ms call of 8192 points in 2-D with dy/dx (the registration's size) and 10 ms to a 110 ms call
// of 2^18 points in 3-D (bench/RESULTS.md). At most kStageBytes per thread stays allocated.
template <typename T>
T* scratch(int64_t size) {
  thread_local std::unique_ptr<T[]> kept;
  thread_local int64_t kept_size = 0;
  if (kept_size < size) {
    kept.reset(new T[size]);
    kept_size = size;
  }
  return kept.get();
}

// Copies the staged streams of one block (level-major) into the point-major outputs.
template <typename T>
void unstage(const T* staged, int64_t rows, int L, int w, int64_t lo, T* out) {
  for (int64_t k = 0; k < rows; ++k) {
    T* o = out + (lo + k) * L * w;
    for (int l = 0; l < L; ++l) {
      const T* s = staged + (l * rows + k) * w;
      for (int j = 0; j < w; ++j) o[l * w + j] = s[j];
    }
  }
}

template <typename T, int D, int F>
void fwd_impl(const HashGridConfig& c, const LevelTable& lv, Launch run, int64_t n, const T* x, const T* params,
              const T* dir, T* y, T* J, T* jvp) {
  const int L = lv.n_levels;
  const bool deriv = J || jvp;
  const int64_t row_bytes = int64_t(sizeof(T)) * L * F * ((y ? 1 : 0) + (J ? D : 0) + (jvp ? 1 : 0));
  const int64_t block = std::min(gather_block(n, run.num_threads),
                                 std::max(kMinBlock, kStageBytes / std::max<int64_t>(row_bytes, 1)));
  const int64_t n_blocks = (n + block - 1) / block;
#pragma omp parallel num_threads(run.num_threads)
  {
    const int64_t rows_max = std::min(block, n), ny = y ? rows_max * L * F : 0, nJ = J ? rows_max * L * F * D : 0;
    T* const ys = scratch<T>(ny + nJ + (jvp ? rows_max * L * F : 0));
    T* const Js = ys + ny;
    T* const jvps = Js + nJ;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const int64_t lo = blk * block, hi = std::min(n, lo + block), rows = hi - lo;
      for (int l = 0; l < L; ++l) {
        T* yl = y ? ys + l * rows * F : nullptr;
        T* Jl = J ? Js + l * rows * F * D : nullptr;
        T* vl = jvp ? jvps + l * rows * F : nullptr;
        if (deriv) fwd_level_range<T, D, F, true>(c, lv, l, lo, hi, x, params, dir, yl, Jl, vl);
        else fwd_level_range<T, D, F, false>(c, lv, l, lo, hi, x, params, nullptr, yl, nullptr, nullptr);
      }
      if (y) unstage(ys, rows, L, F, lo, y);
      if (J) unstage(Js, rows, L, F * D, lo, J);
      if (jvp) unstage(jvps, rows, L, F, lo, jvp);
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

// One level's points lo..hi-1 in order: the sum into each entry has a fixed order. The cotangent comes
// staged level-major: cot points at this level's rows (a, b [rows, F], B [rows, F, D]) and at g's row lo.
template <typename T, int D, int F, bool DERIV>
void param_grad_level_range(const HashGridConfig& c, const LevelTable& lv, int l, int64_t lo, int64_t hi,
                            const T* x, Cotangent cot, T* grad) {
  T* table = grad + lv.offset[l] * F;
  auto add = [table](int64_t entry, const T* v) {
    T* gp = table + entry * F;
    MB_UNROLL
    for (int f = 0; f < F; ++f) gp[f] += v[f];
  };
  // A staged row holds one level (F values), so it is read as level 0 of a row of width F.
  for_each_located<T, D, F, DERIV>(c, lv, l, lo, hi, x, table, [&](int64_t i, const LevelCorners<T, D, DERIV>& lc) {
    param_grad_scatter<T, D, F, DERIV>(lc, 0, 0, point_cot<T, D>(cot, i - lo, F), add);
  });
}

// Copies block rows k0..k1-1 of a point-major [N, L * w] array (block starting at point lo) into the
// level-major [L, rows, w] scratch; the inverse of unstage.
template <typename T>
void stage(const T* in, int64_t lo, int64_t k0, int64_t k1, int64_t rows, int L, int w, T* staged) {
  for (int64_t k = k0; k < k1; ++k) {
    const T* r = in + (lo + k) * L * w;
    for (int l = 0; l < L; ++l) {
      T* s = staged + (l * rows + k) * w;
      for (int j = 0; j < w; ++j) s[j] = r[l * w + j];
    }
  }
}

template <typename T, int D, int F>
void param_grad_impl(const HashGridConfig& c, const LevelTable& lv, Launch run, int64_t n, const T* x,
                     Cotangent cot, T* grad) {
  const int L = lv.n_levels, LF = L * F;
  const bool deriv = cot.B || (cot.b && cot.g);
  // The cotangent is staged level-major per block, as the forward's outputs are (fwd_impl); the scratch is
  // shared by the threads (each reads the levels it owns), at most kStageBytes.
  const int64_t row_bytes = int64_t(sizeof(T)) * LF * ((cot.a ? 1 : 0) + (cot.B ? D : 0) + (cot.b ? 1 : 0));
  const int64_t block = std::min(kMaxBlock, std::max(kMinBlock, kStageBytes / std::max<int64_t>(row_bytes, 1)));
  const int64_t n_blocks = (n + block - 1) / block;
  const int64_t rows_max = std::min(block, n), na = cot.a ? rows_max * LF : 0, nB = cot.B ? rows_max * LF * D : 0;
  T* const sa = scratch<T>(na + nB + (cot.b ? rows_max * LF : 0));
  T* const sB = sa + na;
  T* const sb = sB + nB;
  // Levels own disjoint parameter ranges, so giving each level of a block to one thread needs no atomics,
  // and each entry receives its points' contributions in point order whatever the thread count.
#pragma omp parallel num_threads(run.num_threads)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * block, hi = std::min(n, lo + block), rows = hi - lo;
    const int64_t chunk = 1024;
#pragma omp for schedule(static)
    for (int64_t k0 = 0; k0 < rows; k0 += chunk) {
      const int64_t k1 = std::min(rows, k0 + chunk);
      if (cot.a) stage(static_cast<const T*>(cot.a), lo, k0, k1, rows, L, F, sa);
      if (cot.B) stage(static_cast<const T*>(cot.B), lo, k0, k1, rows, L, F * D, sB);
      if (cot.b) stage(static_cast<const T*>(cot.b), lo, k0, k1, rows, L, F, sb);
    }
#pragma omp for schedule(dynamic, 1)
    for (int l = 0; l < L; ++l) {
      Cotangent staged;
      staged.a = cot.a ? sa + l * rows * F : nullptr;
      staged.B = cot.B ? sB + l * rows * F * D : nullptr;
      staged.b = cot.b ? sb + l * rows * F : nullptr;
      staged.g = cot.g ? static_cast<const T*>(cot.g) + lo * D : nullptr;
      if (deriv) param_grad_level_range<T, D, F, true>(c, lv, l, lo, hi, x, staged, grad);
      else param_grad_level_range<T, D, F, false>(c, lv, l, lo, hi, x, staged, grad);
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
