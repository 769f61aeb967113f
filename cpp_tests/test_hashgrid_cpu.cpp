// CPU kernels without Python, against identities that do not reuse the kernels' own code paths:
// y is linear in the parameters, so <dL/dparams, params> = L for any loss linear in (y, J); and
// dL/dx must match central differences of L.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "hashgrid/hashgrid.h"

using namespace morphbias;

namespace {

struct Problem {
  HashGridConfig cfg;
  LevelTable lv;
  int64_t n;
  int D, LF;
  std::vector<double> x, params, a, B;
};

Problem make_problem(int D, int interp, int64_t n) {
  Problem p;
  p.cfg.n_input_dims = D;
  p.cfg.n_levels = 5;
  p.cfg.n_features_per_level = 2;
  p.cfg.log2_hashmap_size = 10;
  p.cfg.base_resolution = 4;
  p.cfg.per_level_scale = 1.8f;
  p.cfg.interpolation = interp;
  p.lv = make_level_table(p.cfg);
  p.n = n;
  p.D = D;
  p.LF = p.cfg.n_levels * 2;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0), s(-1.0, 1.0);
  p.x.resize(n * D);
  for (auto& v : p.x) v = u(rng);
  p.params.resize(p.lv.n_entries * 2);
  for (auto& v : p.params) v = s(rng);
  p.a.resize(n * p.LF);
  for (auto& v : p.a) v = s(rng);
  p.B.resize(n * p.LF * D);
  for (auto& v : p.B) v = s(rng);
  return p;
}

Launch cpu(int threads) {
  Launch run;
  run.num_threads = threads;
  return run;
}

// L = sum a*y + sum B*J at positions x.
double loss(const Problem& p, const std::vector<double>& x) {
  std::vector<double> y(p.n * p.LF), J(p.n * p.LF * p.D);
  hashgrid_fwd(p.cfg, p.lv, kFloat64, cpu(2), p.n, x.data(), p.params.data(), nullptr, y.data(), J.data(), nullptr);
  double L = 0;
  for (size_t i = 0; i < y.size(); ++i) L += p.a[i] * y[i];
  for (size_t i = 0; i < J.size(); ++i) L += p.B[i] * J[i];
  return L;
}

class CpuKernels : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(CpuKernels, ParamGradientSatisfiesLinearity) {
  const auto [D, interp] = GetParam();
  Problem p = make_problem(D, interp, 300);
  std::vector<double> grad(p.params.size(), 0.0);
  Cotangent cot;
  cot.a = p.a.data();
  cot.B = p.B.data();
  hashgrid_param_grad(p.cfg, p.lv, kFloat64, cpu(2), p.n, p.x.data(), cot, grad.data());
  double dot = 0;
  for (size_t i = 0; i < grad.size(); ++i) dot += grad[i] * p.params[i];
  const double L = loss(p, p.x);
  EXPECT_NEAR(dot, L, 1e-9 * std::abs(L) + 1e-9);  // float64 sums of ~1e5 terms: ~1e-12 relative rounding
}

TEST_P(CpuKernels, InputGradientMatchesFiniteDifferences) {
  const auto [D, interp] = GetParam();
  Problem p = make_problem(D, interp, 1);
  std::vector<double> dx(p.n * D);
  Cotangent cot;
  cot.a = p.a.data();
  cot.B = p.B.data();
  hashgrid_input_grad(p.cfg, p.lv, kFloat64, cpu(1), p.n, p.x.data(), p.params.data(), cot, dx.data());
  const double h = 1e-7;  // one point; the step stays inside its cells unless it sits within 1e-7 of an edge
  for (int e = 0; e < D; ++e) {
    std::vector<double> xp = p.x, xm = p.x;
    xp[e] += h;
    xm[e] -= h;
    const double fd = (loss(p, xp) - loss(p, xm)) / (2 * h);
    EXPECT_NEAR(dx[e], fd, 1e-4 * (std::abs(fd) + 1.0));  // central difference error ~h^2*|d3L| + 1e-16*|L|/h
  }
}

TEST_P(CpuKernels, JacobianMatchesFiniteDifferences) {
  const auto [D, interp] = GetParam();
  Problem p = make_problem(D, interp, 1);
  std::vector<double> y(p.LF), J(p.LF * D), yp(p.LF), ym(p.LF);
  hashgrid_fwd(p.cfg, p.lv, kFloat64, cpu(1), 1, p.x.data(), p.params.data(), nullptr, y.data(), J.data(), nullptr);
  const double h = 1e-7;
  for (int e = 0; e < D; ++e) {
    std::vector<double> xp = p.x, xm = p.x;
    xp[e] += h;
    xm[e] -= h;
    hashgrid_fwd(p.cfg, p.lv, kFloat64, cpu(1), 1, xp.data(), p.params.data(), nullptr, yp.data(), nullptr, nullptr);
    hashgrid_fwd(p.cfg, p.lv, kFloat64, cpu(1), 1, xm.data(), p.params.data(), nullptr, ym.data(), nullptr, nullptr);
    for (int k = 0; k < p.LF; ++k) {
      const double fd = (yp[k] - ym[k]) / (2 * h);
      EXPECT_NEAR(J[k * D + e], fd, 1e-4 * (std::abs(fd) + 1.0));
    }
  }
}

TEST_P(CpuKernels, ParamGradientIsBitwiseIndependentOfThreads) {
  const auto [D, interp] = GetParam();
  Problem p = make_problem(D, interp, 5000);
  for (bool with_B : {false, true}) {
    Cotangent cot;
    cot.a = p.a.data();
    if (with_B) cot.B = p.B.data();
    std::vector<double> g1(p.params.size(), 0.0);
    hashgrid_param_grad(p.cfg, p.lv, kFloat64, cpu(1), p.n, p.x.data(), cot, g1.data());
    // 4 threads: levels spread over threads; 12 and 40 (5 levels): each level split into 3 and 8 entry
    // ranges, one thread each.
    for (int threads : {4, 12, 40}) {
      std::vector<double> g2(p.params.size(), 0.0);
      hashgrid_param_grad(p.cfg, p.lv, kFloat64, cpu(threads), p.n, p.x.data(), cot, g2.data());
      EXPECT_EQ(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(double)), 0) << threads << " threads";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllVariants, CpuKernels,
                         ::testing::Combine(::testing::Values(2, 3), ::testing::Values(int(kLinear), int(kSmoothstep))));

TEST(CpuKernels, EmptyInputIsANoOp) {
  Problem p = make_problem(3, kLinear, 0);
  EXPECT_NO_THROW(hashgrid_fwd(p.cfg, p.lv, kFloat64, cpu(2), 0, nullptr, p.params.data(), nullptr, nullptr, nullptr,
                               nullptr));
}

TEST(CpuKernels, CudaRequestWithoutCudaBuildIsAnError) {
#if !defined(MORPHBIAS_WITH_CUDA)
  Problem p = make_problem(3, kLinear, 2);
  Launch run;
  run.device = 0;
  std::vector<double> y(2 * p.LF);
  EXPECT_THROW(hashgrid_fwd(p.cfg, p.lv, kFloat64, run, 2, p.x.data(), p.params.data(), nullptr, y.data(), nullptr,
                            nullptr),
               std::invalid_argument);
#else
  GTEST_SKIP() << "this build has CUDA kernels";
#endif
}

}  // namespace
