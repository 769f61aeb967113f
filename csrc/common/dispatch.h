// Compile-time dispatch over dtype, input dims and features per level. The kernels are templates
// on all three so that loops over corners, dims and features fully unroll.
#pragma once

#include "common/macros.h"

namespace morphbias {

// Throws std::invalid_argument("<what><got>"). Defined once (hashgrid.cpp) rather than inline: the CPU
// kernels are compiled per instruction set (cpu_isa.h), and an inline string conversion in each build would
// be a weak symbol that the linker may take from the AVX-512 build for every caller.
[[noreturn]] void throw_invalid_argument(const char* what, int got);

template <typename T>
struct TypeTag { using type = T; };
template <int V>
struct IntTag { static constexpr int value = V; };

// Calls fn(TypeTag<T>{}, IntTag<D>{}, IntTag<F>{}) for T in {float, double}, D in {2, 3},
// F in {1, 2, 4, 8}; anything else is an invalid_argument.
template <typename Fn>
void dispatch_t_d_f(DType dt, int D, int F, Fn&& fn) {
  auto with_f = [&](auto t, auto d) {
    switch (F) {
      case 1: fn(t, d, IntTag<1>{}); return;
      case 2: fn(t, d, IntTag<2>{}); return;
      case 4: fn(t, d, IntTag<4>{}); return;
      case 8: fn(t, d, IntTag<8>{}); return;
      default: throw_invalid_argument("n_features_per_level must be 1, 2, 4 or 8, got ", F);
    }
  };
  auto with_d = [&](auto t) {
    switch (D) {
      case 2: with_f(t, IntTag<2>{}); return;
      case 3: with_f(t, IntTag<3>{}); return;
      default: throw_invalid_argument("n_input_dims must be 2 or 3, got ", D);
    }
  };
  switch (dt) {
    case kFloat32: with_d(TypeTag<float>{}); return;
    case kFloat64: with_d(TypeTag<double>{}); return;
    default: throw_invalid_argument("dtype code must be 0 (float32) or 1 (float64), got ", int(dt));
  }
}

}  // namespace morphbias
