// Multiresolution hash-grid encoding (tiny-cuda-nn compatible, CoherentPrime hash).
// The definition is docs/HASHGRID_SPEC.md; this header holds the configuration, the
// per-level table computed once on the host, and the kernel entry points.
//
// Shapes (N points, D input dims, L levels, F features per level, E table entries):
//   x       [N, D]       positions, expected in [0,1]^D, float32 or float64
//   params  [E * F]      entry-major: feature f of entry i of level l at (offset_l + i) * F + f
//   y       [N, L * F]   column l * F + f
//   J       [N, L * F, D] dy/dx
//
// Derivatives that exist: y and dy/dx (forward); the gradient of any loss that is linear in
// (y, dy/dx) with respect to params and x (input_grad / param_grad below); with these two the
// Python layer builds first and second order (see morphbias_fast/encoding.py).
#pragma once

#include <cstdint>

#include "common/macros.h"

namespace morphbias {

constexpr int kMaxLevels = 32;
enum Interp : int { kLinear = 0, kSmoothstep = 1 };

struct HashGridConfig {
  int n_input_dims = 3;          // D: 2 or 3
  int n_levels = 16;             // L: 1..32
  int n_features_per_level = 2;  // F: 1, 2, 4, 8
  int log2_hashmap_size = 19;    // 10..24
  int base_resolution = 16;      // N_min >= 2
  float per_level_scale = 2.0f;  // b > 1
  int interpolation = kLinear;
};

// Everything a kernel needs about the levels; passed by value to CUDA kernels (about 0.7 KB).
struct LevelTable {
  int n_levels = 0;
  float scale[kMaxLevels];        // scale_l = exp2f(l * log2f(b)) * N_min - 1 (float32, as tiny-cuda-nn)
  uint32_t resolution[kMaxLevels];  // res_l = ceil(scale_l) + 1 vertices per axis
  uint32_t size[kMaxLevels];      // entries in level l
  uint32_t hashed[kMaxLevels];    // 1 when size_l < res_l^D (level uses the hash; then size_l = 2^log2_hashmap_size)
  int64_t offset[kMaxLevels];     // first entry of level l
  int64_t n_entries = 0;          // E
};

// Throws std::invalid_argument naming the offending field.
void validate_config(const HashGridConfig& cfg);
LevelTable make_level_table(const HashGridConfig& cfg);

// Where and how a kernel runs. device < 0: CPU with num_threads OpenMP threads; otherwise the
// CUDA device index and the cudaStream_t (as an integer) that torch is currently using.
struct Launch {
  int device = -1;
  uintptr_t stream = 0;
  int num_threads = 1;
};

// The cotangent of a loss that is linear in (y, J):  L = sum_f a_f y_f + sum_{f,d} B_fd dy_f/dx_d.
// B is given either dense (B [N, L*F, D]) or as the outer product b_f * g_d (b [N, L*F], g [N, D]),
// which is what the double backward needs without materialising [N, L*F, D]. Null = zero.
struct Cotangent {
  const void* a = nullptr;  // [N, L*F]
  const void* B = nullptr;  // [N, L*F, D]
  const void* b = nullptr;  // [N, L*F]   (with g)
  const void* g = nullptr;  // [N, D]     (with b)
};

// y, J, jvp may each be null. jvp [N, L*F] = sum_d dir_d * dy/dx_d needs dir [N, D].
void hashgrid_fwd(const HashGridConfig& cfg, const LevelTable& lv, DType dt, Launch run, int64_t n,
                  const void* x, const void* params, const void* dir, void* y, void* J, void* jvp);

// dL_dx [N, D] (overwritten) = dL/dx for the linear loss given by cot. Deterministic on CPU and CUDA
// (one thread owns a point and sums its levels in order).
void hashgrid_input_grad(const HashGridConfig& cfg, const LevelTable& lv, DType dt, Launch run,
                         int64_t n, const void* x, const void* params, Cotangent cot, void* dL_dx);

// dL_dparams [E * F] += dL/dparams for the linear loss given by cot. CPU: bitwise deterministic
// for any thread count (each level's entries are owned by one thread, points added in order).
// CUDA: atomicAdd, so the order of float additions (and the last bits) may vary run to run.
void hashgrid_param_grad(const HashGridConfig& cfg, const LevelTable& lv, DType dt, Launch run,
                         int64_t n, const void* x, Cotangent cot, void* dL_dparams);

// index [N, L, 2^D] int64: the global entry (offset_l + i) of every corner (for exact parity tests).
void hashgrid_corner_index(const HashGridConfig& cfg, const LevelTable& lv, DType dt, Launch run,
                           int64_t n, const void* x, int64_t* index);

// CPU loops (hashgrid_cpu.cpp); same contracts as above. The entry points above call these when
// run.device < 0.
void hashgrid_fwd_cpu(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t, const void*, const void*,
                      const void*, void*, void*, void*);
void hashgrid_input_grad_cpu(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t, const void*,
                             const void*, Cotangent, void*);
void hashgrid_param_grad_cpu(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t, const void*,
                             Cotangent, void*);
void hashgrid_corner_index_cpu(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t, const void*,
                               int64_t*);

#if defined(MORPHBIAS_WITH_CUDA)
// CUDA launchers (hashgrid_cuda.cu); same contracts as above, pointers on run.device.
void hashgrid_fwd_cuda(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t, const void*,
                       const void*, const void*, void*, void*, void*);
void hashgrid_input_grad_cuda(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t,
                              const void*, const void*, Cotangent, void*);
void hashgrid_param_grad_cuda(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t,
                              const void*, Cotangent, void*);
void hashgrid_corner_index_cuda(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t,
                                const void*, int64_t*);
#endif

}  // namespace morphbias
