// CPU kernels (OpenMP). Deterministic: no float sum depends on thread scheduling.
#include <algorithm>

#include "common/dispatch.h"
#include "hashgrid/hashgrid.h"
#include "hashgrid/hashgrid_math.h"

namespace morphbias {

namespace {

// Points per block. Within a block the loops run level by level, so a thread touches one level's
// table (at most 2^24 entries, 4 MB at the default size) at a time instead of all of them: the
// level stays in L2/L3 while the block's outputs (256 x L*F values) stay in L1/L2.
constexpr int64_t kGatherBlock = 256;
// The scatter splits work by level; a larger block means fewer barriers.
constexpr int64_t kScatterBlock = 4096;

template <typename T, int D, int F>
void fwd_impl(const HashGridConfig& c, const LevelTable& lv, Launch run, int64_t n, const T* x, const T* params,
              const T* dir, T* y, T* J, T* jvp) {
  const int L = lv.n_levels, LF = L * F, interp = c.interpolation;
  const bool deriv = J || jvp;
  const int64_t n_blocks = (n + kGatherBlock - 1) / kGatherBlock;
#pragma omp parallel for schedule(static) num_threads(run.num_threads)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * kGatherBlock, hi = std::min(n, lo + kGatherBlock);
    for (int l = 0; l < L; ++l) {
      for (int64_t i = lo; i < hi; ++i) {
        T* y_i = y ? y + i * LF : nullptr;
        if (deriv) {
          fwd_point_level<T, D, F, true>(lv, l, interp, x + i * D, params, dir ? dir + i * D : nullptr, y_i,
                                         J ? J + i * LF * D : nullptr, jvp ? jvp + i * LF : nullptr);
        } else {
          fwd_point_level<T, D, F, false>(lv, l, interp, x + i * D, params, nullptr, y_i, nullptr, nullptr);
        }
      }
    }
  }
}

template <typename T, int D, int F>
void input_grad_impl(const HashGridConfig& c, const LevelTable& lv, Launch run, int64_t n, const T* x,
                     const T* params, Cotangent cot, T* dL_dx) {
  const int L = lv.n_levels, LF = L * F, interp = c.interpolation;
  const int64_t n_blocks = (n + kGatherBlock - 1) / kGatherBlock;
#pragma omp parallel for schedule(static) num_threads(run.num_threads)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * kGatherBlock, hi = std::min(n, lo + kGatherBlock);
    for (int64_t i = lo; i < hi; ++i)
      for (int e = 0; e < D; ++e) dL_dx[i * D + e] = T(0);
    for (int l = 0; l < L; ++l)  // levels in order for every point: a fixed summation order
      for (int64_t i = lo; i < hi; ++i)
        input_grad_point_level<T, D, F>(lv, l, interp, x + i * D, params, point_cot<T, D>(cot, i, LF),
                                        dL_dx + i * D);
  }
}

template <typename T, int D, int F>
void param_grad_impl(const HashGridConfig& c, const LevelTable& lv, Launch run, int64_t n, const T* x,
                     Cotangent cot, T* grad) {
  const int L = lv.n_levels, LF = L * F, interp = c.interpolation;
  const int64_t n_blocks = (n + kScatterBlock - 1) / kScatterBlock;
  auto add = [grad](int64_t entry, const T* v) {
    T* gp = grad + entry * F;
    MB_UNROLL
    for (int f = 0; f < F; ++f) gp[f] += v[f];
  };
  // Levels own disjoint parameter ranges, so giving each level of a block to one thread needs no atomics,
  // and each entry receives its points' contributions in point order whatever the thread count.
#pragma omp parallel num_threads(run.num_threads)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * kScatterBlock, hi = std::min(n, lo + kScatterBlock);
#pragma omp for schedule(dynamic, 1)
    for (int l = 0; l < L; ++l)
      for (int64_t i = lo; i < hi; ++i)
        param_grad_point_level<T, D, F>(lv, l, interp, x + i * D, point_cot<T, D>(cot, i, LF), add);
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
