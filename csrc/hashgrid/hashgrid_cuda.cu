// CUDA kernels. The math is hashgrid_math.h, shared with the CPU path; this file decides the thread
// layout. Gathers and the parameter scatter use one thread per (point, level) as tiny-cuda-nn does;
// the input gradient uses one thread per point summing its levels in order, so it needs no atomics.
// The parameter scatter uses atomicAdd: its float sums are not ordered, so the last bits of
// dL/dparams may differ between runs (documented in README and docs/ARCHITECTURE.md).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/dispatch.h"
#include "hashgrid/hashgrid.h"
#include "hashgrid/hashgrid_math.h"

namespace morphbias {

namespace {

constexpr int kThreads = 128;

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Launch on run.device and restore the caller's current device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check_cuda(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(prev_); }

 private:
  int prev_ = 0;
};

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

template <typename T, int D, int F, bool DERIV>
__global__ void fwd_kernel(LevelTable lv, int interp, int64_t n, const T* __restrict__ x,
                           const T* __restrict__ params, const T* __restrict__ dir, T* __restrict__ y,
                           T* __restrict__ J, T* __restrict__ jvp) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  const int LF = lv.n_levels * F;
  fwd_point_level<T, D, F, DERIV>(lv, l, interp, x + i * D, params, dir ? dir + i * D : nullptr,
                                  y ? y + i * LF : nullptr, J ? J + i * LF * D : nullptr,
                                  jvp ? jvp + i * LF : nullptr);
}

template <typename T, int D, int F>
__global__ void input_grad_kernel(LevelTable lv, int interp, int64_t n, const T* __restrict__ x,
                                  const T* __restrict__ params, Cotangent cot, T* __restrict__ dL_dx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int LF = lv.n_levels * F;
  T out[D];
  MB_UNROLL
  for (int e = 0; e < D; ++e) out[e] = T(0);
  const PointCot<T> pc = point_cot<T, D>(cot, i, LF);
  for (int l = 0; l < lv.n_levels; ++l) input_grad_point_level<T, D, F>(lv, l, interp, x + i * D, params, pc, out);
  MB_UNROLL
  for (int e = 0; e < D; ++e) dL_dx[i * D + e] = out[e];
}

template <typename T, int F>
struct AtomicAdd {
  T* grad;
  __device__ void operator()(int64_t entry, const T* v) const {
    MB_UNROLL
    for (int f = 0; f < F; ++f) atomicAdd(grad + entry * F + f, v[f]);
  }
};

template <typename T, int D, int F, bool DERIV>
__global__ void param_grad_kernel(LevelTable lv, int interp, int64_t n, const T* __restrict__ x, Cotangent cot,
                                  T* __restrict__ grad) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  param_grad_point_level<T, D, F, DERIV>(lv, l, interp, x + i * D, point_cot<T, D>(cot, i, lv.n_levels * F),
                                  AtomicAdd<T, F>{grad});
}

template <typename T, int D>
__global__ void corner_index_kernel(LevelTable lv, int64_t n, const T* __restrict__ x, int64_t* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  corner_index_point_level<T, D>(lv, l, x + i * D, out + (i * lv.n_levels + l) * (1 << D));
}

cudaStream_t as_stream(Launch run) { return reinterpret_cast<cudaStream_t>(run.stream); }

}  // namespace

void hashgrid_fwd_cuda(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                       const void* x, const void* params, const void* dir, void* y, void* J, void* jvp) {
  if (n == 0) return;
  DeviceGuard guard(run.device);
  const dim3 grid(blocks_for(n), lv.n_levels);
  dispatch_t_d_f(dt, c.n_input_dims, c.n_features_per_level, [&](auto t, auto d, auto f) {
    using T = typename decltype(t)::type;
    constexpr int D = decltype(d)::value, F = decltype(f)::value;
    auto args = [&](auto kernel) {
      kernel<<<grid, kThreads, 0, as_stream(run)>>>(lv, c.interpolation, n, static_cast<const T*>(x),
                                                     static_cast<const T*>(params), static_cast<const T*>(dir),
                                                     static_cast<T*>(y), static_cast<T*>(J), static_cast<T*>(jvp));
    };
    if (J || jvp) args(fwd_kernel<T, D, F, true>);
    else args(fwd_kernel<T, D, F, false>);
  });
  check_cuda(cudaGetLastError(), "hashgrid_fwd (CUDA launch)");
}

void hashgrid_input_grad_cuda(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                              const void* x, const void* params, Cotangent cot, void* dL_dx) {
  if (n == 0) return;
  DeviceGuard guard(run.device);
  dispatch_t_d_f(dt, c.n_input_dims, c.n_features_per_level, [&](auto t, auto d, auto f) {
    using T = typename decltype(t)::type;
    input_grad_kernel<T, decltype(d)::value, decltype(f)::value><<<blocks_for(n), kThreads, 0, as_stream(run)>>>(
        lv, c.interpolation, n, static_cast<const T*>(x), static_cast<const T*>(params), cot, static_cast<T*>(dL_dx));
  });
  check_cuda(cudaGetLastError(), "hashgrid_input_grad (CUDA launch)");
}

void hashgrid_param_grad_cuda(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                              const void* x, Cotangent cot, void* dL_dparams) {
  if (n == 0) return;
  DeviceGuard guard(run.device);
  const dim3 grid(blocks_for(n), lv.n_levels);
  dispatch_t_d_f(dt, c.n_input_dims, c.n_features_per_level, [&](auto t, auto d, auto f) {
    using T = typename decltype(t)::type;
    constexpr int D = decltype(d)::value, F = decltype(f)::value;
    auto launch = [&](auto kernel) {
      kernel<<<grid, kThreads, 0, as_stream(run)>>>(lv, c.interpolation, n, static_cast<const T*>(x), cot,
                                                     static_cast<T*>(dL_dparams));
    };
    if (cot.B || (cot.b && cot.g)) launch(param_grad_kernel<T, D, F, true>);
    else launch(param_grad_kernel<T, D, F, false>);
  });
  check_cuda(cudaGetLastError(), "hashgrid_param_grad (CUDA launch)");
}

void hashgrid_corner_index_cuda(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                                const void* x, int64_t* index) {
  if (n == 0) return;
  DeviceGuard guard(run.device);
  const dim3 grid(blocks_for(n), lv.n_levels);
  dispatch_t_d_f(dt, c.n_input_dims, 1, [&](auto t, auto d, auto) {
    using T = typename decltype(t)::type;
    corner_index_kernel<T, decltype(d)::value><<<grid, kThreads, 0, as_stream(run)>>>(
        lv, n, static_cast<const T*>(x), index);
  });
  check_cuda(cudaGetLastError(), "hashgrid_corner_index (CUDA launch)");
}

}  // namespace morphbias
