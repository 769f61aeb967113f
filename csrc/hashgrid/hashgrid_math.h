// Hash-grid math shared by the CPU and CUDA kernels (every function is MB_HD).
// One call handles one point at one level; the kernels only decide how points and levels are
// spread over threads and how results are accumulated.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/macros.h"
#include "hashgrid/hashgrid.h"

namespace morphbias {

// tiny-cuda-nn's CoherentPrime hash: first prime 1 keeps x-neighbours coherent in memory.
MB_HD uint32_t coherent_prime(int d) {
  return d == 0 ? 1u : (d == 1 ? 2654435761u : 805459861u);
}

// p = scale * x + 0.5 with one rounding, as tiny-cuda-nn's fmaf. On the host, without -mfma, fmaf is a
// library call; instead, when |scale * x| >= 2^-6 the float64 value of scale * x + 0.5 is exact (a
// 48-bit product plus 0.5 spans at most 53 bits), so one rounding to float gives exactly fmaf's result.
// Below that the rare inputs take fmaf itself. float64 positions keep the float32 scale.
MB_HD float pos_fma(float scale, float x) {
#if defined(__CUDA_ARCH__)
  return fmaf(scale, x, 0.5f);
#else
  const double prod = static_cast<double>(scale) * static_cast<double>(x);
  if (prod >= 0.015625 || prod <= -0.015625) return static_cast<float>(prod + 0.5);
  return std::fma(scale, x, 0.5f);
#endif
}
MB_HD double pos_fma(float scale, double x) { return fma(static_cast<double>(scale), x, 0.5); }
// floor without a library call on baseline x86-64 (no SSE4.1 round instruction): truncate, then step
// down for negatives. Exact: beyond 2^23 (float) / 2^52 (double) every value is already an integer.
MB_HD float floor_t(float v) {
#if defined(__CUDA_ARCH__)
  return floorf(v);
#else
  if (!(v > -8388608.0f && v < 8388608.0f)) return v;
  const float t = static_cast<float>(static_cast<int32_t>(v));
  return t > v ? t - 1.0f : t;
#endif
}
MB_HD double floor_t(double v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  if (!(v > -4503599627370496.0 && v < 4503599627370496.0)) return v;
  const double t = static_cast<double>(static_cast<int64_t>(v));
  return t > v ? t - 1.0 : t;
#endif
}

// float -> int32 saturating at the int32 range and NaN -> 0, as the GPU's conversion does (cvt.rzi.s32): on
// the host a plain cast of such a value is undefined behaviour, so host and device could disagree.
template <typename T>
MB_HD int32_t to_int32(T v) {
#if defined(__CUDA_ARCH__)
  return static_cast<int32_t>(v);
#else
  if (!(v == v)) return 0;  // NaN: inputs are only unchecked when the caller asked (check_finite=False)
  if (v >= T(2147483647)) return 2147483647;
  if (v <= T(-2147483648.0)) return -2147483647 - 1;
  return static_cast<int32_t>(v);
#endif
}

// Where a point falls in one level: the lower corner and the 1-D interpolation factors.
template <typename T, int D>
struct LevelPoint {
  uint32_t g[D];  // lower corner (signed floor reinterpreted as uint32, so negatives wrap like tcnn)
  T w0[D];        // weight factor of the lower vertex along d: 1 - s(t_d)
  T w1[D];        // weight factor of the upper vertex along d: s(t_d)
  T dw[D];        // d w1 / d x_d = scale * s'(t_d)   (d w0 / d x_d = -dw)
  T ddw[D];       // d^2 w1 / d x_d^2 = scale^2 * s''(t_d)
};

template <typename T, int D>
MB_HD void level_point(const T* x, float scale, int interp, LevelPoint<T, D>& lp) {
  const T sc = static_cast<T>(scale);
MB_UNROLL
  for (int d = 0; d < D; ++d) {
    const T p = pos_fma(scale, x[d]);
    const T fl = floor_t(p);
    lp.g[d] = static_cast<uint32_t>(to_int32(fl));
    const T t = p - fl;
    if (interp == kLinear) {
      lp.w1[d] = t;
      lp.dw[d] = sc;
      lp.ddw[d] = T(0);
    } else {  // smoothstep s(t) = t^2 (3 - 2t), s' = 6t(1-t), s'' = 6 - 12t
      lp.w1[d] = t * t * (T(3) - T(2) * t);
      lp.dw[d] = sc * (T(6) * t * (T(1) - t));
      lp.ddw[d] = sc * sc * (T(6) - T(12) * t);
    }
    lp.w0[d] = T(1) - lp.w1[d];
  }
}

// Entries of all 2^D corners inside level l (before adding offset_l); bit d of corner c = +1 along d.
// Built by doubling over dimensions: corner c + 2^d extends corner c by the upper vertex along d.
template <int D>
MB_HD void corner_indices(const uint32_t* g, uint32_t res, uint32_t size, uint32_t hashed, uint32_t* idx) {
  if (hashed) {  // hashed levels have size 2^log2_hashmap_size: the modulo is a mask
    idx[0] = g[0];
    idx[1] = g[0] + 1u;
    MB_UNROLL
    for (int d = 1; d < D; ++d) {
      const uint32_t lo = g[d] * coherent_prime(d), hi = (g[d] + 1u) * coherent_prime(d);
      MB_UNROLL
      for (int c = 0; c < (1 << d); ++c) {
        idx[c + (1 << d)] = idx[c] ^ hi;
        idx[c] ^= lo;
      }
    }
    MB_UNROLL
    for (int c = 0; c < (1 << D); ++c) idx[c] &= size - 1u;
  } else {
    idx[0] = g[0];
    idx[1] = g[0] + 1u;
    uint32_t stride = 1;
    MB_UNROLL
    for (int d = 1; d < D; ++d) {
      stride *= res;
      const uint32_t lo = g[d] * stride, hi = (g[d] + 1u) * stride;
      MB_UNROLL
      for (int c = 0; c < (1 << d); ++c) {
        idx[c + (1 << d)] = idx[c] + hi;
        idx[c] += lo;
      }
    }
    // Dense index % size: only corners past the +x/+y boundary exceed size, so divide only then.
    MB_UNROLL
    for (int c = 0; c < (1 << D); ++c) idx[c] = idx[c] < size ? idx[c] : idx[c] % size;
  }
}

// w_c = prod_d (bit_d ? w1_d : w0_d). The doubling multiplies in dimension order starting from the
// first factor, which rounds exactly like the sequential product 1 * f_0 * f_1 * ... (tcnn's order).
template <typename T, int D>
MB_HD void corner_weights(const LevelPoint<T, D>& lp, T* w) {
  w[0] = lp.w0[0];
  w[1] = lp.w1[0];
  MB_UNROLL
  for (int d = 1; d < D; ++d) {
    MB_UNROLL
    for (int c = 0; c < (1 << d); ++c) {
      w[c + (1 << d)] = w[c] * lp.w1[d];
      w[c] *= lp.w0[d];
    }
  }
}

// dw[c] = d w_c / d x_e: the same product with dimension e's factor replaced by its derivative.
template <typename T, int D>
MB_HD void corner_dweights(const LevelPoint<T, D>& lp, int e, T* dw) {
  dw[0] = e == 0 ? -lp.dw[0] : lp.w0[0];
  dw[1] = e == 0 ? lp.dw[0] : lp.w1[0];
  MB_UNROLL
  for (int d = 1; d < D; ++d) {
    const T lo = d == e ? -lp.dw[d] : lp.w0[d], hi = d == e ? lp.dw[d] : lp.w1[d];
    MB_UNROLL
    for (int c = 0; c < (1 << d); ++c) {
      dw[c + (1 << d)] = dw[c] * hi;
      dw[c] *= lo;
    }
  }
}

// d^2 w_c / (d x_e d x_k), one corner at a time (only the second-order paths use it).
template <typename T, int D>
MB_HD T corner_ddweight(const LevelPoint<T, D>& lp, uint32_t c, int e, int k) {
  T w = T(1);
  MB_UNROLL
  for (int d = 0; d < D; ++d) {
    const bool up = (c >> d) & 1u;
    T f;
    if (d == e && d == k) f = up ? lp.ddw[d] : -lp.ddw[d];
    else if (d == e || d == k) f = up ? lp.dw[d] : -lp.dw[d];
    else f = up ? lp.w1[d] : lp.w0[d];
    w *= f;
  }
  return w;
}

// ---- per (point, level) operations -------------------------------------------------------------

// Everything about one point in one level that the operations below share.
template <typename T, int D, bool DERIV>
struct LevelCorners {
  static constexpr int kC = 1 << D;
  LevelPoint<T, D> lp;
  uint32_t idx[kC];            // entry inside the level
  T w[kC];                     // w_c
  T dw[DERIV ? D : 1][kC];     // d w_c / d x_e (only when DERIV)

  LevelCorners() = default;
  MB_HD LevelCorners(const LevelTable& lv, int l, int interp, const T* x_n) {
    level_point<T, D>(x_n, lv.scale[l], interp, lp);
    corner_indices<D>(lp.g, lv.resolution[l], lv.size[l], lv.hashed[l], idx);
    corner_weights<T, D>(lp, w);
    if (DERIV) {
      MB_UNROLL
      for (int e = 0; e < D; ++e) corner_dweights<T, D>(lp, e, dw[DERIV ? e : 0]);
    }
  }
};

// y_n[l*F+f] = sum_c w_c theta_cf; optionally J_n[(l*F+f)*D+e] and jvp_n[l*F+f] = sum_e dir_e J_fe,
// from corners already located (lc); table = params + offset_l * F.
template <typename T, int D, int F, bool DERIV>
MB_HD void fwd_gather(const LevelCorners<T, D, DERIV>& lc, int l, const T* __restrict__ table,
                      const T* __restrict__ dir_n, T* __restrict__ y_n, T* __restrict__ J_n, T* __restrict__ jvp_n) {
  T acc[F];
  T jac[F][D];
  MB_UNROLL
  for (int f = 0; f < F; ++f) {
    acc[f] = T(0);
    MB_UNROLL
    for (int e = 0; e < D; ++e) jac[f][e] = T(0);
  }
  MB_UNROLL
  for (int c = 0; c < (1 << D); ++c) {
    const T* th = table + static_cast<int64_t>(lc.idx[c]) * F;
    T val[F];
    MB_UNROLL
    for (int f = 0; f < F; ++f) val[f] = th[f];
    MB_UNROLL
    for (int f = 0; f < F; ++f) acc[f] += lc.w[c] * val[f];
    if (DERIV) {
      MB_UNROLL
      for (int e = 0; e < D; ++e) {
        MB_UNROLL
        for (int f = 0; f < F; ++f) jac[f][e] += lc.dw[DERIV ? e : 0][c] * val[f];
      }
    }
  }
  MB_UNROLL
  for (int f = 0; f < F; ++f) {
    if (y_n) y_n[l * F + f] = acc[f];
    if (DERIV) {
      if (J_n) {
        MB_UNROLL
        for (int e = 0; e < D; ++e) J_n[(l * F + f) * D + e] = jac[f][e];
      }
      if (jvp_n) {
        T s = T(0);
        MB_UNROLL
        for (int e = 0; e < D; ++e) s += dir_n[e] * jac[f][e];
        jvp_n[l * F + f] = s;
      }
    }
  }
}

template <typename T, int D, int F, bool DERIV>
MB_HD void fwd_point_level(const LevelTable& lv, int l, int interp, const T* __restrict__ x_n,
                           const T* __restrict__ params, const T* __restrict__ dir_n, T* __restrict__ y_n,
                           T* __restrict__ J_n, T* __restrict__ jvp_n) {
  const LevelCorners<T, D, DERIV> lc(lv, l, interp, x_n);
  fwd_gather<T, D, F, DERIV>(lc, l, params + lv.offset[l] * F, dir_n, y_n, J_n, jvp_n);
}

// Pointers of one point's cotangent (see Cotangent in hashgrid.h); null = zero.
template <typename T>
struct PointCot {
  const T* a;  // [L*F]
  const T* B;  // [L*F*D]
  const T* b;  // [L*F]
  const T* g;  // [D]
  MB_HD bool second() const { return B || (b && g); }
};

template <typename T, int D>
MB_HD PointCot<T> point_cot(const Cotangent& cot, int64_t n, int LF) {
  PointCot<T> pc;
  pc.a = cot.a ? static_cast<const T*>(cot.a) + n * LF : nullptr;
  pc.B = cot.B ? static_cast<const T*>(cot.B) + n * LF * D : nullptr;
  pc.b = cot.b ? static_cast<const T*>(cot.b) + n * LF : nullptr;
  pc.g = cot.g ? static_cast<const T*>(cot.g) + n * D : nullptr;
  return pc;
}

// The coefficient of dy_f/dx_d in the loss: B_fd (dense) + b_f g_d (outer product).
template <typename T, int D, int F>
MB_HD void cot_matrix(const PointCot<T>& pc, int l, T (&Bm)[F][D]) {
  MB_UNROLL
  for (int f = 0; f < F; ++f) {
    MB_UNROLL
    for (int d = 0; d < D; ++d) {
      T v = T(0);
      if (pc.B) v += pc.B[(l * F + f) * D + d];
      if (pc.b && pc.g) v += pc.b[l * F + f] * pc.g[d];
      Bm[f][d] = v;
    }
  }
}

// For every corner c of level l: value_f = a_f w_c + sum_e B_fe dw_c/dx_e, handed to add(entry, value[F])
// with the global table entry. The caller's add decides between += and atomicAdd.
template <typename T, int D, int F, bool DERIV, typename Add>
MB_HD void param_grad_scatter(const LevelCorners<T, D, DERIV>& lc, int l, int64_t offset, const PointCot<T>& pc,
                              Add&& add) {
  T a[F];
  MB_UNROLL
  for (int f = 0; f < F; ++f) a[f] = pc.a ? pc.a[l * F + f] : T(0);
  T Bm[F][D];
  if (DERIV) cot_matrix<T, D, F>(pc, l, Bm);
  MB_UNROLL
  for (int c = 0; c < (1 << D); ++c) {
    T v[F];
    MB_UNROLL
    for (int f = 0; f < F; ++f) v[f] = a[f] * lc.w[c];
    if (DERIV) {
      MB_UNROLL
      for (int e = 0; e < D; ++e) {
        MB_UNROLL
        for (int f = 0; f < F; ++f) v[f] += Bm[f][e] * lc.dw[DERIV ? e : 0][c];
      }
    }
    add(offset + lc.idx[c], v);
  }
}

template <typename T, int D, int F, bool DERIV, typename Add>
MB_HD void param_grad_point_level(const LevelTable& lv, int l, int interp, const T* __restrict__ x_n,
                                  const PointCot<T>& pc, Add&& add) {
  const LevelCorners<T, D, DERIV> lc(lv, l, interp, x_n);
  param_grad_scatter<T, D, F, DERIV>(lc, l, lv.offset[l], pc, add);
}

// out_e += sum_f a_f dy_f/dx_e + sum_{f,d} B_fd d^2 y_f/(dx_d dx_e) for level l.
template <typename T, int D, int F>
MB_HD void input_grad_gather(const LevelCorners<T, D, true>& lc, int l, const T* __restrict__ table,
                             const PointCot<T>& pc, T* out) {
  const bool second = pc.second();
  T Bm[F][D];
  if (second) cot_matrix<T, D, F>(pc, l, Bm);
  MB_UNROLL
  for (int c = 0; c < (1 << D); ++c) {
    const T* th = table + static_cast<int64_t>(lc.idx[c]) * F;
    T val[F];
    MB_UNROLL
    for (int f = 0; f < F; ++f) val[f] = th[f];
    if (pc.a) {
      T s = T(0);  // sum_f a_f theta_cf
      MB_UNROLL
      for (int f = 0; f < F; ++f) s += pc.a[l * F + f] * val[f];
      MB_UNROLL
      for (int e = 0; e < D; ++e) out[e] += lc.dw[e][c] * s;
    }
    if (second) {
      T s[D];  // s_d = sum_f B_fd theta_cf
      MB_UNROLL
      for (int d = 0; d < D; ++d) {
        s[d] = T(0);
        MB_UNROLL
        for (int f = 0; f < F; ++f) s[d] += Bm[f][d] * val[f];
      }
      MB_UNROLL
      for (int e = 0; e < D; ++e) {
        T acc = T(0);
        MB_UNROLL
        for (int d = 0; d < D; ++d) acc += corner_ddweight<T, D>(lc.lp, c, d, e) * s[d];
        out[e] += acc;
      }
    }
  }
}

template <typename T, int D, int F>
MB_HD void input_grad_point_level(const LevelTable& lv, int l, int interp, const T* __restrict__ x_n,
                                  const T* __restrict__ params, const PointCot<T>& pc, T* out) {
  const LevelCorners<T, D, true> lc(lv, l, interp, x_n);
  input_grad_gather<T, D, F>(lc, l, params + lv.offset[l] * F, pc, out);
}

template <typename T, int D>
MB_HD void corner_index_point_level(const LevelTable& lv, int l, const T* x_n, int64_t* out_nl) {
  LevelPoint<T, D> lp;
  level_point<T, D>(x_n, lv.scale[l], kLinear, lp);
  uint32_t idx[1 << D];
  corner_indices<D>(lp.g, lv.resolution[l], lv.size[l], lv.hashed[l], idx);
  MB_UNROLL
  for (int c = 0; c < (1 << D); ++c) out_nl[c] = lv.offset[l] + idx[c];
}

}  // namespace morphbias
