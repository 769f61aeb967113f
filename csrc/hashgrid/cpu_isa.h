// The CPU kernels (hashgrid_cpu.cpp) are compiled once per instruction set that the compiler can target
// (CMakeLists.txt): baseline x86-64 (or the host's baseline elsewhere), AVX2 + FMA (x86-64-v3) and AVX-512
// (x86-64-v4), each into its own namespace. cpu_isa.cpp defines the hashgrid_*_cpu entry points of
// hashgrid.h and forwards each call to the best build the running CPU supports. Every build gives the same
// bits: the vector builds locate points in SIMD lanes with the per-point code's operations (no
// contraction to FMA, see CMakeLists.txt), and the tests compare each build with the baseline bit for bit.
#pragma once

#include <string>
#include <vector>

#include "hashgrid/hashgrid.h"

namespace morphbias {

#define MB_DECLARE_CPU_KERNELS(ns)                                                                            \
  namespace ns {                                                                                              \
  void hashgrid_fwd_cpu(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t, const void*,        \
                        const void*, const void*, void*, void*, void*);                                     \
  void hashgrid_input_grad_cpu(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t, const void*, \
                               const void*, Cotangent, void*);                                              \
  void hashgrid_param_grad_cpu(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t, const void*, \
                               Cotangent, void*);                                                           \
  void hashgrid_corner_index_cpu(const HashGridConfig&, const LevelTable&, DType, Launch, int64_t,            \
                                 const void*, int64_t*);                                                    \
  }

MB_DECLARE_CPU_KERNELS(cpu_baseline)
MB_DECLARE_CPU_KERNELS(cpu_avx2)
MB_DECLARE_CPU_KERNELS(cpu_avx512)

// Names of the builds that were compiled and that this CPU can run, baseline first.
std::vector<std::string> cpu_isas();
// The build the CPU kernels use now: the last of cpu_isas() unless MORPHBIAS_CPU_ISA or set_cpu_isa chose.
std::string cpu_isa();
// Use build `name` from now on (one of cpu_isas(); std::invalid_argument otherwise). For tests and
// benchmarks that compare the builds; results do not depend on it.
void set_cpu_isa(const std::string& name);

}  // namespace morphbias
