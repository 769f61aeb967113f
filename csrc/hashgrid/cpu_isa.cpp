// Run-time choice among the CPU kernel builds (see cpu_isa.h). Compiled for the baseline instruction set.
#include "hashgrid/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace morphbias {

namespace {

enum Isa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2, kNone = -1 };
const char* const kNames[] = {"baseline", "avx2", "avx512"};

bool compiled(int isa) {
  switch (isa) {
    case kBaseline: return true;
#if defined(MB_CPU_HAVE_AVX2)
    case kAvx2: return true;
#endif
#if defined(MB_CPU_HAVE_AVX512)
    case kAvx512: return true;
#endif
    default: return false;
  }
}

// The features each build was compiled for (-march=x86-64-v3 / -v4), asked of the CPU at run time. v3 also
// names F16C, MOVBE and LZCNT, which nothing in the kernels uses and every AVX2 CPU has; not every compiler's
// __builtin_cpu_supports knows their names, so they are not asked.
bool supported(int isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  if (isa == kAvx2) return v3;
  if (isa == kAvx512)
    return v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512cd");
#endif
  return isa == kBaseline;
}

bool usable(int isa) { return compiled(isa) && supported(isa); }

int by_name(const std::string& name) {
  for (int i = 0; i < 3; ++i)
    if (name == kNames[i]) return i;
  return kNone;
}

std::string list() {
  std::string s;
  for (const auto& n : cpu_isas()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::atomic<int> chosen{kNone};

int active() {
  int isa = chosen.load(std::memory_order_relaxed);
  if (isa != kNone) return isa;
  if (const char* env = std::getenv("MORPHBIAS_CPU_ISA"); env && *env) {
    isa = by_name(env);
    if (isa == kNone || !usable(isa))
      throw std::invalid_argument("MORPHBIAS_CPU_ISA=" + std::string(env) +
                                  " is not a CPU kernel build this machine can run; choose one of: " + list());
  } else {
    isa = kBaseline;
    for (int i = kAvx512; i > kBaseline; --i)
      if (usable(i)) {
        isa = i;
        break;
      }
  }
  chosen.store(isa, std::memory_order_relaxed);
  return isa;
}

}  // namespace

std::vector<std::string> cpu_isas() {
  std::vector<std::string> out;
  for (int i = kBaseline; i <= kAvx512; ++i)
    if (usable(i)) out.push_back(kNames[i]);
  return out;
}

std::string cpu_isa() { return kNames[active()]; }

void set_cpu_isa(const std::string& name) {
  const int isa = by_name(name);
  if (isa == kNone || !usable(isa))
    throw std::invalid_argument("CPU kernel build '" + name + "' is not available here; choose one of: " + list());
  chosen.store(isa, std::memory_order_relaxed);
}

// Each entry point forwards to the chosen build; a build that was not compiled is never chosen.
#if defined(MB_CPU_HAVE_AVX2)
#define MB_CPU_AVX2_CALL(fn, ...) \
  case kAvx2: return cpu_avx2::fn(__VA_ARGS__);
#else
#define MB_CPU_AVX2_CALL(fn, ...)
#endif
#if defined(MB_CPU_HAVE_AVX512)
#define MB_CPU_AVX512_CALL(fn, ...) \
  case kAvx512: return cpu_avx512::fn(__VA_ARGS__);
#else
#define MB_CPU_AVX512_CALL(fn, ...)
#endif
#define MB_CPU_FORWARD(fn, ...)            \
  switch (active()) {                      \
    MB_CPU_AVX2_CALL(fn, __VA_ARGS__)      \
    MB_CPU_AVX512_CALL(fn, __VA_ARGS__)    \
    default: return cpu_baseline::fn(__VA_ARGS__); \
  }

void hashgrid_fwd_cpu(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                      const void* x, const void* params, const void* dir, void* y, void* J, void* jvp) {
  MB_CPU_FORWARD(hashgrid_fwd_cpu, c, lv, dt, run, n, x, params, dir, y, J, jvp)
}

void hashgrid_input_grad_cpu(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                             const void* x, const void* params, Cotangent cot, void* dL_dx) {
  MB_CPU_FORWARD(hashgrid_input_grad_cpu, c, lv, dt, run, n, x, params, cot, dL_dx)
}

void hashgrid_param_grad_cpu(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                             const void* x, Cotangent cot, void* dL_dparams) {
  MB_CPU_FORWARD(hashgrid_param_grad_cpu, c, lv, dt, run, n, x, cot, dL_dparams)
}

void hashgrid_corner_index_cpu(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                               const void* x, int64_t* index) {
  MB_CPU_FORWARD(hashgrid_corner_index_cpu, c, lv, dt, run, n, x, index)
}

}  // namespace morphbias
