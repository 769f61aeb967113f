// The shared host/device math, without Python: level table, hash, fast floor/fma paths, weights and
// their derivatives (checked against finite differences in double).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "hashgrid/hashgrid.h"
#include "hashgrid/hashgrid_math.h"

using namespace morphbias;

TEST(LevelTable, DefaultThreeDMatchesTinyCudaNn) {
  HashGridConfig c;  // tiny-cuda-nn defaults: D=3, L=16, F=2, 2^19, N_min=16, b=2
  const LevelTable lv = make_level_table(c);
  EXPECT_EQ(lv.n_entries, 7114752);  // docs/HASHGRID_SPEC.md: 14,229,504 parameters with F = 2
  EXPECT_EQ(lv.resolution[0], 16u);
  EXPECT_EQ(lv.size[0], 16u * 16u * 16u);
  EXPECT_EQ(lv.size[2], 64u * 64u * 64u);
  EXPECT_EQ(lv.hashed[2], 0u);
  for (int l = 3; l < 16; ++l) {
    EXPECT_EQ(lv.hashed[l], 1u);
    EXPECT_EQ(lv.size[l], 1u << 19);
  }
}

TEST(LevelTable, RejectsBadConfigs) {
  HashGridConfig c;
  c.n_input_dims = 4;
  EXPECT_THROW(make_level_table(c), std::invalid_argument);
  c = HashGridConfig();
  c.per_level_scale = 1.0f;
  EXPECT_THROW(make_level_table(c), std::invalid_argument);
  c = HashGridConfig();
  c.n_levels = 32;
  c.base_resolution = 1024;
  c.per_level_scale = 4.0f;  // resolution beyond 2^31 (grid corners are int32)
  EXPECT_THROW(make_level_table(c), std::invalid_argument);
}

TEST(Hash, CoherentPrimeByHand) {
  const uint32_t g[3] = {7u, 11u, 13u};
  uint32_t idx[8];
  corner_indices<3>(g, /*res=*/1000, /*size=*/1u << 19, /*hashed=*/1, idx);
  const uint64_t m = 1ull << 32;
  const uint32_t want0 = static_cast<uint32_t>((7ull ^ ((11ull * 2654435761ull) % m) ^ ((13ull * 805459861ull) % m)) %
                                               (1ull << 19));
  EXPECT_EQ(idx[0], want0);
  const uint32_t want7 = static_cast<uint32_t>((8ull ^ ((12ull * 2654435761ull) % m) ^ ((14ull * 805459861ull) % m)) %
                                               (1ull << 19));
  EXPECT_EQ(idx[7], want7);
}

TEST(Hash, DenseIndexWrapsAtSize) {
  const uint32_t g[2] = {4u, 4u};  // res 5: corner (5, 5) -> 5 + 5*5 = 30, size 32 keeps it
  uint32_t idx[4];
  corner_indices<2>(g, 5, 32, 0, idx);
  EXPECT_EQ(idx[0], 4u + 4u * 5u);
  EXPECT_EQ(idx[3], 30u);
  const uint32_t g2[2] = {4u, 5u};  // 5 + 6*5 = 35 -> 35 % 32 = 3
  corner_indices<2>(g2, 5, 32, 0, idx);
  EXPECT_EQ(idx[3], 3u);
}

TEST(FastPaths, FloatFmaIsBitwiseFmaf) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> ux(-1.5f, 1.5f), us(1.0f, 70000.0f), tiny(-1e-6f, 1e-6f);
  for (int i = 0; i < 2000000; ++i) {
    const float s = us(rng), x = (i % 7 == 0) ? tiny(rng) : ux(rng);
    const float want = std::fma(s, x, 0.5f), got = pos_fma(s, x);
    ASSERT_EQ(std::memcmp(&want, &got, sizeof(float)), 0) << s << " * " << x;
  }
}

TEST(FastPaths, FloorMatchesStdFloor) {
  const float fs[] = {0.f, -0.f, 0.5f, -0.5f, 1.f, -1.f, 2.999999f, -2.999999f, 8388607.5f, -8388607.5f,
                      8388608.f, 1e20f, -1e20f, 123456.75f};
  for (float v : fs) EXPECT_EQ(floor_t(v), std::floor(v)) << v;
  const double ds[] = {0.0, -0.25, 0.9999999999, -1.0000001, 4503599627370495.5, -4503599627370495.5, 1e300};
  for (double v : ds) EXPECT_EQ(floor_t(v), std::floor(v)) << v;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1e6f, 1e6f);
  for (int i = 0; i < 100000; ++i) {
    const float v = u(rng);
    ASSERT_EQ(floor_t(v), std::floor(v)) << v;
  }
}

template <int D>
void check_weights(int interp) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const float scale = 7.3f;
  const double h = 1e-6;  // central differences: error O(h^2 * s''') ~ 1e-10 relative, far below 1e-6
  for (int trial = 0; trial < 200; ++trial) {
    double x[D];
    for (int d = 0; d < D; ++d) x[d] = u(rng);
    LevelPoint<double, D> lp;
    level_point<double, D>(x, scale, interp, lp);
    bool near_edge = false;  // finite differences must not cross a cell boundary
    for (int d = 0; d < D; ++d) {
      const double t = lp.w1[d];
      near_edge |= interp == kLinear && (t < 1e-4 || t > 1 - 1e-4);
      const double p = scale * x[d] + 0.5;
      near_edge |= (p - std::floor(p)) < 1e-4 || (p - std::floor(p)) > 1 - 1e-4;
    }
    if (near_edge) continue;
    double w[1 << D];
    corner_weights<double, D>(lp, w);
    double sum = 0;
    for (double v : w) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-14);  // partition of unity, up to rounding of 2^D products
    for (int e = 0; e < D; ++e) {
      double dw[1 << D], wp[1 << D], wm[1 << D];
      corner_dweights<double, D>(lp, e, dw);
      double xp[D], xm[D];
      std::memcpy(xp, x, sizeof(x));
      std::memcpy(xm, x, sizeof(x));
      xp[e] += h;
      xm[e] -= h;
      LevelPoint<double, D> lpp, lpm;
      level_point<double, D>(xp, scale, interp, lpp);
      level_point<double, D>(xm, scale, interp, lpm);
      corner_weights<double, D>(lpp, wp);
      corner_weights<double, D>(lpm, wm);
      for (int c = 0; c < (1 << D); ++c) {
        EXPECT_NEAR(dw[c], (wp[c] - wm[c]) / (2 * h), 1e-6 * scale);
        for (int k = 0; k < D; ++k) {  // second derivatives from differences of the first
          double dwp[1 << D], dwm[1 << D];
          corner_dweights<double, D>(lpp, k, dwp);
          corner_dweights<double, D>(lpm, k, dwm);
          const double dd = corner_ddweight<double, D>(lp, c, e, k);
          EXPECT_NEAR(dd, (dwp[c] - dwm[c]) / (2 * h), 1e-5 * scale * scale);
        }
      }
    }
  }
}

TEST(Weights, DerivativesMatchFiniteDifferences2DLinear) { check_weights<2>(kLinear); }
TEST(Weights, DerivativesMatchFiniteDifferences3DLinear) { check_weights<3>(kLinear); }
TEST(Weights, DerivativesMatchFiniteDifferences2DSmoothstep) { check_weights<2>(kSmoothstep); }
TEST(Weights, DerivativesMatchFiniteDifferences3DSmoothstep) { check_weights<3>(kSmoothstep); }
