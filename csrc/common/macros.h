// Shared macros for host/device code. Kept free of CUDA and torch headers so that the
// CPU translation units compile with a plain C++ compiler.
#pragma once

#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define MB_HD __host__ __device__ __forceinline__
#define MB_UNROLL _Pragma("unroll")
#else
// Force inlining: the per-corner helpers are small and called inside the hottest loops.
#if defined(__GNUC__) || defined(__clang__)
#define MB_HD inline __attribute__((always_inline))
#else
#define MB_HD inline
#endif
#if defined(__clang__)
#define MB_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define MB_UNROLL _Pragma("GCC unroll 16")
#else
#define MB_UNROLL
#endif
#endif

// Raise std::invalid_argument (pybind11 turns it into ValueError) with the call site's message.
#define MB_CHECK_ARG(cond, msg)                                   \
  do {                                                            \
    if (!(cond)) throw std::invalid_argument(std::string(msg));   \
  } while (0)

namespace morphbias {

// Dtype codes exchanged with Python (DTYPE_CODES in morphbias_fast/ops/hashgrid.py holds the same table).
enum DType : int { kFloat32 = 0, kFloat64 = 1 };

}  // namespace morphbias
