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

// p = scale * x + 0.5 with one rounding (tiny-cuda-nn uses fmaf); float64 keeps the float32 scale.
MB_HD float pos_fma(float scale, float x) { return fmaf(scale, x, 0.5f); }
MB_HD double pos_fma(float scale, double x) { return fma(static_cast<double>(scale), x, 0.5); }
MB_HD float floor_t(float v) { return floorf(v); }
MB_HD double floor_t(double v) { return floor(v); }

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
    lp.g[d] = static_cast<uint32_t>(static_cast<int32_t>(fl));
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

// Entry of corner c (bit d of c = +1 along d) inside level l, before adding offset_l.
template <int D>
MB_HD uint32_t corner_index(const uint32_t* g, uint32_t c, uint32_t res, uint32_t size, uint32_t hashed,
                            uint32_t pow2) {
  uint32_t i = 0;
  if (hashed) {
MB_UNROLL
    for (int d = 0; d < D; ++d) i ^= (g[d] + ((c >> d) & 1u)) * coherent_prime(d);
  } else {
    uint32_t stride = 1;
MB_UNROLL
    for (int d = 0; d < D; ++d) {
      i += (g[d] + ((c >> d) & 1u)) * stride;
      stride *= res;
    }
  }
  return pow2 ? (i & (size - 1u)) : (i % size);
}

// w_c = prod_d (bit_d ? w1_d : w0_d), multiplied in dimension order starting from 1 (as tcnn).
template <typename T, int D>
MB_HD T corner_weight(const LevelPoint<T, D>& lp, uint32_t c) {
  T w = T(1);
MB_UNROLL
  for (int d = 0; d < D; ++d) w *= ((c >> d) & 1u) ? lp.w1[d] : lp.w0[d];
  return w;
}

// d w_c / d x_e
template <typename T, int D>
MB_HD T corner_dweight(const LevelPoint<T, D>& lp, uint32_t c, int e) {
  T w = T(1);
MB_UNROLL
  for (int d = 0; d < D; ++d) {
    const bool up = (c >> d) & 1u;
    w *= (d == e) ? (up ? lp.dw[d] : -lp.dw[d]) : (up ? lp.w1[d] : lp.w0[d]);
  }
  return w;
}

// d^2 w_c / (d x_e d x_k)
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

// y_n[l*F+f] = sum_c w_c theta_cf; optionally J_n[(l*F+f)*D+e] and jvp_n[l*F+f] = sum_e dir_e J_fe.
template <typename T, int D, int F, bool DERIV>
MB_HD void fwd_point_level(const LevelTable& lv, int l, int interp, const T* __restrict__ x_n,
                           const T* __restrict__ params, const T* __restrict__ dir_n, T* __restrict__ y_n,
                           T* __restrict__ J_n, T* __restrict__ jvp_n) {
  LevelPoint<T, D> lp;
  level_point<T, D>(x_n, lv.scale[l], interp, lp);
  T acc[F];
  T jac[F][D];
MB_UNROLL
  for (int f = 0; f < F; ++f) {
    acc[f] = T(0);
MB_UNROLL
    for (int e = 0; e < D; ++e) jac[f][e] = T(0);
  }
  const T* table = params + lv.offset[l] * F;
MB_UNROLL
  for (uint32_t c = 0; c < (1u << D); ++c) {
    const uint32_t idx = corner_index<D>(lp.g, c, lv.resolution[l], lv.size[l], lv.hashed[l], lv.pow2[l]);
    const T* th = table + static_cast<int64_t>(idx) * F;
    T val[F];
MB_UNROLL
    for (int f = 0; f < F; ++f) val[f] = th[f];
    const T w = corner_weight<T, D>(lp, c);
MB_UNROLL
    for (int f = 0; f < F; ++f) acc[f] += w * val[f];
    if (DERIV) {
MB_UNROLL
      for (int e = 0; e < D; ++e) {
        const T dwe = corner_dweight<T, D>(lp, c, e);
MB_UNROLL
        for (int f = 0; f < F; ++f) jac[f][e] += dwe * val[f];
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

// Pointers of one point's cotangent (see Cotangent in hashgrid.h); null = zero.
template <typename T>
struct PointCot {
  const T* a;  // [L*F]
  const T* B;  // [L*F*D]
  const T* b;  // [L*F]
  const T* g;  // [D]
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

// For every corner c of level l: value_f = a_f w_c + sum_e B_fe dw_c/dx_e, handed to add(entry, f, value)
// where entry is the global table entry. The caller's add decides between += and atomicAdd.
template <typename T, int D, int F, typename Add>
MB_HD void param_grad_point_level(const LevelTable& lv, int l, int interp, const T* __restrict__ x_n,
                                  const PointCot<T>& pc, Add&& add) {
  LevelPoint<T, D> lp;
  level_point<T, D>(x_n, lv.scale[l], interp, lp);
  const bool deriv = pc.B || (pc.b && pc.g);
  T a[F];
  T Bm[F][D];
MB_UNROLL
  for (int f = 0; f < F; ++f) {
    a[f] = pc.a ? pc.a[l * F + f] : T(0);
MB_UNROLL
    for (int e = 0; e < D; ++e) {
      T v = T(0);
      if (pc.B) v += pc.B[(l * F + f) * D + e];
      if (pc.b && pc.g) v += pc.b[l * F + f] * pc.g[e];
      Bm[f][e] = v;
    }
  }
MB_UNROLL
  for (uint32_t c = 0; c < (1u << D); ++c) {
    const uint32_t idx = corner_index<D>(lp.g, c, lv.resolution[l], lv.size[l], lv.hashed[l], lv.pow2[l]);
    const int64_t entry = lv.offset[l] + idx;
    const T w = corner_weight<T, D>(lp, c);
    T v[F];
MB_UNROLL
    for (int f = 0; f < F; ++f) v[f] = a[f] * w;
    if (deriv) {
MB_UNROLL
      for (int e = 0; e < D; ++e) {
        const T dwe = corner_dweight<T, D>(lp, c, e);
MB_UNROLL
        for (int f = 0; f < F; ++f) v[f] += Bm[f][e] * dwe;
      }
    }
    add(entry, v);
  }
}

// out_e += sum_f a_f dy_f/dx_e + sum_{f,d} B_fd d^2 y_f/(dx_d dx_e) for level l.
template <typename T, int D, int F>
MB_HD void input_grad_point_level(const LevelTable& lv, int l, int interp, const T* __restrict__ x_n,
                                  const T* __restrict__ params, const PointCot<T>& pc, T* out) {
  LevelPoint<T, D> lp;
  level_point<T, D>(x_n, lv.scale[l], interp, lp);
  const bool second = pc.B || (pc.b && pc.g);
  T Bm[F][D];
  if (second) {
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
  const T* table = params + lv.offset[l] * F;
MB_UNROLL
  for (uint32_t c = 0; c < (1u << D); ++c) {
    const uint32_t idx = corner_index<D>(lp.g, c, lv.resolution[l], lv.size[l], lv.hashed[l], lv.pow2[l]);
    const T* th = table + static_cast<int64_t>(idx) * F;
    T val[F];
MB_UNROLL
    for (int f = 0; f < F; ++f) val[f] = th[f];
    if (pc.a) {
      T s = T(0);  // sum_f a_f theta_cf
MB_UNROLL
      for (int f = 0; f < F; ++f) s += pc.a[l * F + f] * val[f];
MB_UNROLL
      for (int e = 0; e < D; ++e) out[e] += corner_dweight<T, D>(lp, c, e) * s;
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
        for (int d = 0; d < D; ++d) acc += corner_ddweight<T, D>(lp, c, d, e) * s[d];
        out[e] += acc;
      }
    }
  }
}

template <typename T, int D>
MB_HD void corner_index_point_level(const LevelTable& lv, int l, const T* x_n, int64_t* out_nl) {
  LevelPoint<T, D> lp;
  level_point<T, D>(x_n, lv.scale[l], kLinear, lp);
MB_UNROLL
  for (uint32_t c = 0; c < (1u << D); ++c)
    out_nl[c] = lv.offset[l] + corner_index<D>(lp.g, c, lv.resolution[l], lv.size[l], lv.hashed[l], lv.pow2[l]);
}

}  // namespace morphbias
