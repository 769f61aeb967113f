// Every CPU kernel build (cpu_isa.h) against the baseline build, bit for bit. The baseline locates points
// with hashgrid_math.h's per-point code, the one the CUDA kernels run; the AVX2 and AVX-512 builds locate them
// in SIMD lanes. Inputs include what the lanes treat specially: tails shorter than a chunk, points outside
// [0, 1], positions whose product with the scale is below 2^-6 (where the baseline's fmaf emulation takes the
// library call), values beyond the int32 range (saturating corners), infinities and NaN.
// Nothing here needs the vector builds: on a CPU without AVX2 only the baseline is compared with itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "hashgrid/cpu_isa.h"
#include "hashgrid/hashgrid.h"

using namespace morphbias;

namespace {

template <typename T>
struct Outputs {
  std::vector<T> y, J, jvp, grad_a, grad_all, dx;
};

// Bit for bit, except that any NaN equals any NaN: which operand's NaN an operation returns, and so its sign
// bit, is left open by IEEE 754 and differs between the scalar and vector forms of one product; NaN outputs
// come only from infinite or NaN inputs.
template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0 && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
  return true;
}

struct Case {
  HashGridConfig cfg;
  LevelTable lv;
  int64_t n;
};

Case make_case(int D, int F, int interp) {
  Case c;
  c.cfg.n_input_dims = D;
  c.cfg.n_levels = 6;
  c.cfg.n_features_per_level = F;
  c.cfg.log2_hashmap_size = 10;  // levels 0-2 dense (one wraps at the +x boundary), 3-5 hashed
  c.cfg.base_resolution = 4;
  c.cfg.per_level_scale = 1.8f;
  c.cfg.interpolation = interp;
  c.lv = make_level_table(c.cfg);
  c.n = 1000;  // 31 chunks of 32 and a tail of 8
  return c;
}

template <typename T>
Outputs<T> run_all(const Case& c, int threads) {
  const int D = c.cfg.n_input_dims, LF = c.cfg.n_levels * c.cfg.n_features_per_level;
  const DType dt = sizeof(T) == 4 ? kFloat32 : kFloat64;
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-0.25, 1.25), s(-1.0, 1.0);
  std::vector<T> x(c.n * D), params(c.lv.n_entries * c.cfg.n_features_per_level), dir(c.n * D);
  for (auto& v : x) v = static_cast<T>(u(rng));
  const T inf = std::numeric_limits<T>::infinity();
  const T special[] = {T(0), T(1), T(-1), T(1e-9), T(-3e-9), T(4e9), T(-4e9), inf, -inf,
                       std::numeric_limits<T>::quiet_NaN(), T(0.5), T(2.5)};
  for (size_t k = 0; k < sizeof(special) / sizeof(special[0]); ++k) x[(37 * k) % x.size()] = special[k];
  for (auto& v : params) v = static_cast<T>(s(rng));
  for (auto& v : dir) v = static_cast<T>(s(rng));
  std::vector<T> a(c.n * LF), B(c.n * LF * D), b(c.n * LF), g(c.n * D);
  for (auto* vec : {&a, &B, &b, &g})
    for (auto& v : *vec) v = static_cast<T>(s(rng));
  Launch run;
  run.num_threads = threads;
  Outputs<T> o;
  o.y.resize(c.n * LF);
  o.J.resize(c.n * LF * D);
  o.jvp.resize(c.n * LF);
  hashgrid_fwd(c.cfg, c.lv, dt, run, c.n, x.data(), params.data(), dir.data(), o.y.data(), o.J.data(), o.jvp.data());
  Cotangent ca;
  ca.a = a.data();
  o.grad_a.assign(params.size(), T(0));
  hashgrid_param_grad(c.cfg, c.lv, dt, run, c.n, x.data(), ca, o.grad_a.data());
  Cotangent call = ca;
  call.B = B.data();
  call.b = b.data();
  call.g = g.data();
  o.grad_all.assign(params.size(), T(0));
  hashgrid_param_grad(c.cfg, c.lv, dt, run, c.n, x.data(), call, o.grad_all.data());
  o.dx.resize(c.n * D);
  hashgrid_input_grad(c.cfg, c.lv, dt, run, c.n, x.data(), params.data(), call, o.dx.data());
  return o;
}

template <typename T>
void expect_builds_agree(int D, int F, int interp) {
  const Case c = make_case(D, F, interp);
  const std::string before = cpu_isa();
  set_cpu_isa("baseline");
  const Outputs<T> ref = run_all<T>(c, 2);
  for (const std::string& isa : cpu_isas()) {
    set_cpu_isa(isa);
    for (int threads : {1, 2, 13}) {  // 13 threads over 6 levels: each level's gradient split in 3 ranges
      const Outputs<T> o = run_all<T>(c, threads);
      SCOPED_TRACE(isa + ", " + std::to_string(threads) + " threads");
      EXPECT_TRUE(same_bits(o.y, ref.y));
      EXPECT_TRUE(same_bits(o.J, ref.J));
      EXPECT_TRUE(same_bits(o.jvp, ref.jvp));
      EXPECT_TRUE(same_bits(o.grad_a, ref.grad_a));
      EXPECT_TRUE(same_bits(o.grad_all, ref.grad_all));
      EXPECT_TRUE(same_bits(o.dx, ref.dx));
    }
  }
  set_cpu_isa(before);
}

class CpuIsaBuilds : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(CpuIsaBuilds, Float32BitwiseEqualToBaseline) {
  const auto [D, F, interp] = GetParam();
  expect_builds_agree<float>(D, F, interp);
}

TEST_P(CpuIsaBuilds, Float64BitwiseEqualToBaseline) {
  const auto [D, F, interp] = GetParam();
  expect_builds_agree<double>(D, F, interp);
}

INSTANTIATE_TEST_SUITE_P(AllVariants, CpuIsaBuilds,
                         ::testing::Combine(::testing::Values(2, 3), ::testing::Values(1, 2, 4),
                                            ::testing::Values(int(kLinear), int(kSmoothstep))));

TEST(CpuIsa, BaselineIsAlwaysAvailableAndUnknownNamesAreRejected) {
  const auto isas = cpu_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), "baseline");
  EXPECT_THROW(set_cpu_isa("sse9"), std::invalid_argument);
}

}  // namespace
