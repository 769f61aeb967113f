// CPU kernels (OpenMP). Deterministic: no float sum depends on thread scheduling.
// Compiled once per instruction set (cpu_isa.h), into namespace MB_CPU_NS.
#include <algorithm>
#include <cmath>

#include "common/dispatch.h"
#include "hashgrid/cpu_isa.h"
#include "hashgrid/hashgrid.h"
#include "hashgrid/hashgrid_math.h"

#if !defined(MB_CPU_NS)
#define MB_CPU_NS cpu_baseline
#endif
// Points are located in SIMD lanes where AVX2 and FMA exist (see Chunk below).
#if defined(__AVX2__) && defined(__FMA__)
#define MB_LANES 1
#endif

namespace morphbias {
namespace MB_CPU_NS {

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
// out-of-order window reaches (the large tables are latency bound, see bench/RESULTS.md). 32 against 16
// and 64, pipelined (for_each_located): the best sum over the forward and backward kernels.
constexpr int kChunk = 32;

#if defined(MB_LANES)
// Locating a point (position, lower corner, hash, weights) is most of the work: with the table in L1 it was
// 47 of the 50 ms of a 2-D forward (2^18 points, one thread; bench/RESULTS.md). So kChunk points are located
// together, structure-of-arrays: each step below is one loop over the chunk's points doing what
// level_point, corner_indices, corner_weights and corner_dweights (hashgrid_math.h) do for one, in the same
// operations and order, so the compiler vectorises across points and every lane rounds exactly as the
// per-point code does (the CUDA kernels use that code; parity tests compare the two bit for bit).
template <typename T, int D, bool DERIV>
struct Chunk {
  static constexpr int kC = 1 << D;
  uint32_t g[D][kChunk];
  T w0[D][kChunk], w1[D][kChunk], dwf[D][kChunk], ddw[D][kChunk];  // LevelPoint's fields, one lane per point
  uint32_t idx[kC][kChunk];
  T w[kC][kChunk];
  T dw[DERIV ? D : 1][kC][kChunk];

  // Points x[0..m-1] (row-major [m, D]) at level l; lanes past m repeat point m-1 and are never read.
  void locate(const LevelTable& lv, int l, int interp, const T* x, int m) {
    T xs[D][kChunk];
    for (int k = 0; k < kChunk; ++k)
      MB_UNROLL
      for (int d = 0; d < D; ++d) xs[d][k] = x[std::min(k, m - 1) * D + d];
    const float scale = lv.scale[l];
    const T sc = static_cast<T>(scale);
    MB_UNROLL
    for (int d = 0; d < D; ++d) {
      T p[kChunk], fl[kChunk];
      positions(scale, xs[d], p);
      floors(p, fl);
      to_int32s(fl, g[d]);
      if (interp == kLinear) {
        for (int k = 0; k < kChunk; ++k) {
          w1[d][k] = p[k] - fl[k];
          dwf[d][k] = sc;
          ddw[d][k] = T(0);
          w0[d][k] = T(1) - w1[d][k];
        }
      } else {
        for (int k = 0; k < kChunk; ++k) {
          const T t = p[k] - fl[k];
          w1[d][k] = t * t * (T(3) - T(2) * t);
          dwf[d][k] = sc * (T(6) * t * (T(1) - t));
          ddw[d][k] = sc * sc * (T(6) - T(12) * t);
          w0[d][k] = T(1) - w1[d][k];
        }
      }
    }
    indices(lv.resolution[l], lv.size[l], lv.hashed[l]);
    products(w0, w1, w);
    if (DERIV) {
      MB_UNROLL
      for (int e = 0; e < D; ++e) {
        T lo[D][kChunk], hi[D][kChunk];
        MB_UNROLL
        for (int d = 0; d < D; ++d)
          for (int k = 0; k < kChunk; ++k) {
            lo[d][k] = d == e ? -dwf[d][k] : w0[d][k];
            hi[d][k] = d == e ? dwf[d][k] : w1[d][k];
          }
        products(lo, hi, dw[DERIV ? e : 0]);
      }
    }
  }

  uint32_t corner(int c, int k) const { return idx[c][k]; }

  // param_grad_scatter for the chunk's first m points: each corner's value a_f w_c + sum_e Bm_fe dw_c/dx_e
  // computed in lanes with cot_matrix's and param_grad_scatter's operations, then added to grad (this
  // level's slice) point by point, corners in order, so every entry sums in the per-point code's order.
  // cot is the level's staged cotangent: rows k0.. of a [rows, F], B [rows, F, D], b [rows, F]; g [rows, D].
  template <int F, bool RANGED>
  void scatter(const Cotangent& cot, int64_t k0, int m, T* grad, uint32_t e0, uint32_t e1) const {
    const T* ca = static_cast<const T*>(cot.a);
    const T* cB = static_cast<const T*>(cot.B);
    const T* cb = static_cast<const T*>(cot.b);
    const T* cg = static_cast<const T*>(cot.g);
    T a[F][kChunk];
    T Bm[DERIV ? F : 1][DERIV ? D : 1][kChunk];
    for (int k = 0; k < kChunk; ++k) {
      const int64_t r = k0 + std::min(k, m - 1);  // lanes past m repeat row m-1; their values are not added
      MB_UNROLL
      for (int f = 0; f < F; ++f) {
        a[f][k] = ca ? ca[r * F + f] : T(0);
        if (DERIV) {
          MB_UNROLL
          for (int d = 0; d < D; ++d) {
            T v = T(0);
            if (cB) v += cB[(r * F + f) * D + d];
            if (cb && cg) v += cb[r * F + f] * cg[r * D + d];
            Bm[DERIV ? f : 0][DERIV ? d : 0][k] = v;
          }
        }
      }
    }
    T v[kC][F][kChunk];
    MB_UNROLL
    for (int c = 0; c < kC; ++c) {
      MB_UNROLL
      for (int f = 0; f < F; ++f)
        for (int k = 0; k < kChunk; ++k) v[c][f][k] = a[f][k] * w[c][k];
      if (DERIV) {
        MB_UNROLL
        for (int e = 0; e < D; ++e)
          MB_UNROLL
          for (int f = 0; f < F; ++f)
            for (int k = 0; k < kChunk; ++k)
              v[c][f][k] += Bm[DERIV ? f : 0][DERIV ? e : 0][k] * dw[DERIV ? e : 0][c][k];
      }
    }
    for (int k = 0; k < m; ++k)
      MB_UNROLL
      for (int c = 0; c < kC; ++c) {
        if (RANGED && (idx[c][k] < e0 || idx[c][k] >= e1)) continue;
        T* gp = grad + static_cast<int64_t>(idx[c][k]) * F;
        MB_UNROLL
        for (int f = 0; f < F; ++f) gp[f] += v[c][f][k];
      }
  }

  // fwd_gather for the chunk's first m points, in lanes: y [m, F] and dy/dx [m, F, D] (either may be null),
  // each sum over the corners in fwd_gather's order. Lanes past m read point m-1's corners, always valid.
  template <int F>
  void gather(const T* table, int m, T* y, T* J) const {
    T acc[F][kChunk];
    T jac[DERIV ? F : 1][DERIV ? D : 1][kChunk];
    for (int f = 0; f < F; ++f)
      for (int k = 0; k < kChunk; ++k) acc[f][k] = T(0);
    if (DERIV)
      for (int f = 0; f < F; ++f)
        for (int e = 0; e < D; ++e)
          for (int k = 0; k < kChunk; ++k) jac[DERIV ? f : 0][DERIV ? e : 0][k] = T(0);
    MB_UNROLL
    for (int c = 0; c < kC; ++c) {
      T val[F][kChunk];
      for (int k = 0; k < kChunk; ++k)
        MB_UNROLL
        for (int f = 0; f < F; ++f) val[f][k] = table[static_cast<int64_t>(idx[c][k]) * F + f];
      MB_UNROLL
      for (int f = 0; f < F; ++f)
        for (int k = 0; k < kChunk; ++k) acc[f][k] += w[c][k] * val[f][k];
      if (DERIV) {
        MB_UNROLL
        for (int e = 0; e < D; ++e)
          MB_UNROLL
          for (int f = 0; f < F; ++f)
            for (int k = 0; k < kChunk; ++k)
              jac[DERIV ? f : 0][DERIV ? e : 0][k] += dw[DERIV ? e : 0][c][k] * val[f][k];
      }
    }
    if (y)
      for (int k = 0; k < m; ++k)
        MB_UNROLL
        for (int f = 0; f < F; ++f) y[k * F + f] = acc[f][k];
    if (DERIV && J)
      for (int k = 0; k < m; ++k)
        MB_UNROLL
        for (int f = 0; f < F; ++f)
          MB_UNROLL
          for (int e = 0; e < D; ++e) J[(k * F + f) * D + e] = jac[DERIV ? f : 0][DERIV ? e : 0][k];
  }

  // Lane k as the per-point record the gathers and scatters of hashgrid_math.h take.
  LevelCorners<T, D, DERIV> lane(int k) const {
    LevelCorners<T, D, DERIV> lc;
    MB_UNROLL
    for (int d = 0; d < D; ++d) {
      lc.lp.g[d] = g[d][k];
      lc.lp.w0[d] = w0[d][k];
      lc.lp.w1[d] = w1[d][k];
      lc.lp.dw[d] = dwf[d][k];
      lc.lp.ddw[d] = ddw[d][k];
    }
    MB_UNROLL
    for (int c = 0; c < kC; ++c) {
      lc.idx[c] = idx[c][k];
      lc.w[c] = w[c][k];
      if (DERIV) {
        MB_UNROLL
        for (int e = 0; e < D; ++e) lc.dw[DERIV ? e : 0][c] = dw[DERIV ? e : 0][c][k];
      }
    }
    return lc;
  }

 private:
  // pos_fma over the lanes: this build has FMA (MB_LANES), where fmaf is one instruction and exactly the
  // value pos_fma's baseline emulation computes; float64 takes pos_fma's own fma.
  static void positions(float scale, const float* x, float* p) {
    for (int k = 0; k < kChunk; ++k) p[k] = std::fma(scale, x[k], 0.5f);
  }
  static void positions(float scale, const double* x, double* p) {
    for (int k = 0; k < kChunk; ++k) p[k] = pos_fma(scale, x[k]);
  }

  // floor_t over the lanes: AVX2 implies SSE4.1's rounding instruction, and floor is exact, so std::floor
  // gives floor_t's bits (values already integral, infinite or NaN included).
  static void floors(const T* v, T* out) {
    for (int k = 0; k < kChunk; ++k) out[k] = std::floor(v[k]);
  }

  // to_int32 of the floored lanes: saturating at the int32 range, NaN -> 0, as the GPU's conversion. The
  // clamp runs in float64, where both int32 bounds are exact, so no select follows the conversion.
  static void to_int32s(const T* v, uint32_t* out) {
    for (int k = 0; k < kChunk; ++k) {
      const double vn = v[k] == v[k] ? static_cast<double>(v[k]) : 0.0;
      out[k] = static_cast<uint32_t>(static_cast<int32_t>(std::max(-2147483648.0, std::min(2147483647.0, vn))));
    }
  }

  void indices(uint32_t res, uint32_t size, uint32_t hashed) {
    for (int k = 0; k < kChunk; ++k) {
      idx[0][k] = g[0][k];
      idx[1][k] = g[0][k] + 1u;
    }
    uint32_t stride = 1;
    MB_UNROLL
    for (int d = 1; d < D; ++d) {
      stride *= res;
      const uint32_t mul = hashed ? coherent_prime(d) : stride;
      MB_UNROLL
      for (int c = 0; c < (1 << d); ++c)
        for (int k = 0; k < kChunk; ++k) {
          const uint32_t lo = g[d][k] * mul, hi = (g[d][k] + 1u) * mul;
          if (hashed) {
            idx[c + (1 << d)][k] = idx[c][k] ^ hi;
            idx[c][k] ^= lo;
          } else {
            idx[c + (1 << d)][k] = idx[c][k] + hi;
            idx[c][k] += lo;
          }
        }
    }
    if (hashed) {
      MB_UNROLL
      for (int c = 0; c < kC; ++c)
        for (int k = 0; k < kChunk; ++k) idx[c][k] &= size - 1u;
    } else {  // only corners past the +x/+y boundary exceed size, so divide only when a lane does
      bool over = false;
      MB_UNROLL
      for (int c = 0; c < kC; ++c)
        for (int k = 0; k < kChunk; ++k) over |= idx[c][k] >= size;
      if (over)
        for (int c = 0; c < kC; ++c)
          for (int k = 0; k < kChunk; ++k) idx[c][k] = idx[c][k] < size ? idx[c][k] : idx[c][k] % size;
    }
  }

  // out_c = prod_d (bit_d of c ? hi_d : lo_d), doubling over dimensions in corner_weights' order.
  static void products(const T (&lo)[D][kChunk], const T (&hi)[D][kChunk], T (&out)[kC][kChunk]) {
    for (int k = 0; k < kChunk; ++k) {
      out[0][k] = lo[0][k];
      out[1][k] = hi[0][k];
    }
    MB_UNROLL
    for (int d = 1; d < D; ++d) {
      MB_UNROLL
      for (int c = 0; c < (1 << d); ++c)
        for (int k = 0; k < kChunk; ++k) {
          out[c + (1 << d)][k] = out[c][k] * hi[d][k];
          out[c][k] *= lo[d][k];
        }
    }
  }
};
#else
// Without AVX2 and FMA, vectorising the locating across points is slower than doing it point by point
// (measured: 3-D 2^15 forward 48 ms as lanes on SSE2 against 42 ms per point; bench/RESULTS.md, "CPU
// speed: located in lanes"), so this build keeps hashgrid_math.h's per-point records.
template <typename T, int D, bool DERIV>
struct Chunk {
  LevelCorners<T, D, DERIV> pts[kChunk];
  void locate(const LevelTable& lv, int l, int interp, const T* x, int m) {
    for (int k = 0; k < m; ++k) pts[k] = LevelCorners<T, D, DERIV>(lv, l, interp, x + k * D);
  }
  uint32_t corner(int c, int k) const { return pts[k].idx[c]; }
  const LevelCorners<T, D, DERIV>& lane(int k) const { return pts[k]; }
};
#endif

// Points lo..hi-1 of level l in order, located a chunk at a time: consume_chunk(i0, m, chunk) gets points
// i0..i0+m-1. `table` is level l's slice of the array the corners index. Chunks are software-pipelined:
// chunk j+1 is located and its corners prefetched before chunk j is consumed, so a chunk's misses have a
// whole chunk of work to arrive in (3-D 2^19 forward 67 -> 54 ms, 2-D 49 -> 33 ms; bench/RESULTS.md).
template <typename T, int D, int F, bool DERIV, typename Table, typename ConsumeChunk>
void for_each_chunk(const HashGridConfig& c, const LevelTable& lv, int l, int64_t lo, int64_t hi, const T* x,
                    const Table* table, ConsumeChunk&& consume_chunk) {
  Chunk<T, D, DERIV> ch[2];
  auto start = [&](Chunk<T, D, DERIV>& cj, int64_t i0) {
    const int m = static_cast<int>(std::min<int64_t>(kChunk, hi - i0));
    cj.locate(lv, l, c.interpolation, x + i0 * D, m);
    for (int k = 0; k < m; ++k)
      MB_UNROLL
      for (int cn = 0; cn < (1 << D); ++cn) __builtin_prefetch(table + static_cast<int64_t>(cj.corner(cn, k)) * F);
  };
  if (lo < hi) start(ch[0], lo);
  int cur = 0;
  for (int64_t i0 = lo; i0 < hi; i0 += kChunk, cur ^= 1) {
    if (i0 + kChunk < hi) start(ch[cur ^ 1], i0 + kChunk);
    consume_chunk(i0, static_cast<int>(std::min<int64_t>(kChunk, hi - i0)), ch[cur]);
  }
}

// The same, one point at a time: consume(i, corners) with hashgrid_math.h's per-point record.
template <typename T, int D, int F, bool DERIV, typename Table, typename Consume>
void for_each_located(const HashGridConfig& c, const LevelTable& lv, int l, int64_t lo, int64_t hi, const T* x,
                      const Table* table, Consume&& consume) {
  for_each_chunk<T, D, F, DERIV>(c, lv, l, lo, hi, x, table,
                                 [&](int64_t i0, int m, const Chunk<T, D, DERIV>& ch) {
                                   for (int k = 0; k < m; ++k) consume(i0 + k, ch.lane(k));
                                 });
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
#if defined(MB_LANES)
  // With dy/dx, y and dy/dx are summed in lanes too: 3-D 2^19 forward with dy/dx 135 -> 89 ms. Without it the
  // lane gather was slower than the per-point one (53 -> 62 ms), and the jvp (double backward only) stays
  // per point.
  if (DERIV && !jvps) {
    for_each_chunk<T, D, F, DERIV>(c, lv, l, lo, hi, x, table, [&](int64_t i0, int m, const Chunk<T, D, DERIV>& ch) {
      const int64_t k0 = i0 - lo;
      ch.template gather<F>(table, m, ys ? ys + k0 * F : nullptr, Js ? Js + k0 * F * D : nullptr);
    });
    return;
  }
#endif
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
// (A holder of internal linkage rather than std::unique_ptr, whose out-of-line members would be weak symbols
// shared with the other instruction-set builds; see throw_invalid_argument in dispatch.h.)
template <typename T>
struct Kept {
  T* p = nullptr;
  int64_t size = 0;
  ~Kept() { delete[] p; }
};

template <typename T>
T* scratch(int64_t size) {
  thread_local Kept<T> kept;
  if (kept.size < size) {
    delete[] kept.p;
    kept.p = nullptr;  // a failed allocation below must not leave a dangling pointer to free twice
    kept.size = 0;
    kept.p = new T[size];
    kept.size = size;
  }
  return kept.p;
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
// With RANGED only the entries in [e0, e1) of the level receive their contributions (param_grad_impl splits
// a level between threads that way); each entry still sums its points in order.
template <typename T, int D, int F, bool DERIV, bool RANGED>
void param_grad_level_range(const HashGridConfig& c, const LevelTable& lv, int l, int64_t lo, int64_t hi,
                            const T* x, Cotangent cot, T* grad, uint32_t e0, uint32_t e1) {
  T* table = grad + lv.offset[l] * F;
  auto add = [table, e0, e1](int64_t entry, const T* v) {
    if (RANGED && (entry < e0 || entry >= e1)) return;
    T* gp = table + entry * F;
    MB_UNROLL
    for (int f = 0; f < F; ++f) gp[f] += v[f];
  };
#if defined(MB_LANES)
  if (DERIV) {  // the corner values in lanes, then added point by point in param_grad_scatter's order
    for_each_chunk<T, D, F, DERIV>(c, lv, l, lo, hi, x, table, [&](int64_t i0, int m, const Chunk<T, D, DERIV>& ch) {
      ch.template scatter<F, RANGED>(cot, i0 - lo, m, table, e0, e1);
    });
    return;
  }
#endif
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
  // and each entry receives its points' contributions in point order whatever the thread count. With more
  // threads than levels, each level's entries are split into `parts` contiguous ranges, one thread each:
  // every part locates all of the level's points (the locating is repeated, the additions are not), and an
  // entry still sums its points in order, so the bits do not depend on the split.
  const int parts = run.num_threads > L ? (run.num_threads + L - 1) / L : 1;
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
    for (int item = 0; item < L * parts; ++item) {
      const int l = item / parts, p = item % parts;
      Cotangent staged;
      staged.a = cot.a ? sa + l * rows * F : nullptr;
      staged.B = cot.B ? sB + l * rows * F * D : nullptr;
      staged.b = cot.b ? sb + l * rows * F : nullptr;
      staged.g = cot.g ? static_cast<const T*>(cot.g) + lo * D : nullptr;
      const uint64_t size = lv.size[l];
      const uint32_t e0 = static_cast<uint32_t>(size * p / parts), e1 = static_cast<uint32_t>(size * (p + 1) / parts);
      if (parts == 1) {
        if (deriv) param_grad_level_range<T, D, F, true, false>(c, lv, l, lo, hi, x, staged, grad, 0, 0);
        else param_grad_level_range<T, D, F, false, false>(c, lv, l, lo, hi, x, staged, grad, 0, 0);
      } else {
        if (deriv) param_grad_level_range<T, D, F, true, true>(c, lv, l, lo, hi, x, staged, grad, e0, e1);
        else param_grad_level_range<T, D, F, false, true>(c, lv, l, lo, hi, x, staged, grad, e0, e1);
      }
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

}  // namespace MB_CPU_NS
}  // namespace morphbias
