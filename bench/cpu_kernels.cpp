// Milliseconds of each CPU kernel alone (no Python, no autograd): forward, forward with dy/dx, parameter
// gradient of a loss on y, and on y and dy/dx; N (2^18) uniform points, L = 16, F = 2, float32, median of 5.
// Build and run from the repository root (bench/RESULTS.md, "CPU speed: located in lanes"); FLAGS empty builds
// the baseline kernels, "-march=x86-64-v3" the AVX2 + FMA ones, "-march=x86-64-v4" the AVX-512 ones, as
// CMakeLists.txt compiles them (always with -ffp-contract=off -fno-trapping-math):
//   g++ -O3 -std=gnu++17 -fopenmp -ffp-contract=off -fno-trapping-math FLAGS -Icsrc bench/cpu_kernels.cpp
//       csrc/hashgrid/hashgrid.cpp csrc/hashgrid/cpu_isa.cpp csrc/hashgrid/hashgrid_cpu.cpp -o /tmp/cpu_kernels
//   /tmp/cpu_kernels D LOG2_TABLE [THREADS [N]]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>
#include <algorithm>
#include "hashgrid/hashgrid.h"
using namespace morphbias;
template <class Fn> double ms(Fn f, int r = 5) {
  f(); std::vector<double> t;
  for (int i = 0; i < r; ++i) { auto a = std::chrono::steady_clock::now(); f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count()); }
  std::sort(t.begin(), t.end()); return t[r / 2];
}
int main(int argc, char** argv) {
  int D = atoi(argv[1]), T = atoi(argv[2]), th = argc > 3 ? atoi(argv[3]) : 2;
  HashGridConfig c; c.n_input_dims = D; c.log2_hashmap_size = T; c.per_level_scale = 2.0f;
  const int64_t n = argc > 4 ? atoll(argv[4]) : (1 << 18);
  LevelTable lv = make_level_table(c);
  const int LF = 32;
  std::mt19937 g(0); std::uniform_real_distribution<float> u(0, 1); std::normal_distribution<float> nd;
  std::vector<float> x(n * D), p(lv.n_entries * 2), a(n * LF), B(n * LF * D), y(n * LF), J(n * LF * D), gr(p.size());
  for (auto& v : x) v = u(g);
  for (auto& v : p) v = u(g) * 2e-4f - 1e-4f;
  for (auto& v : a) v = nd(g);
  for (auto& v : B) v = nd(g);
  Launch run; run.num_threads = th;
  Cotangent ca; ca.a = a.data(); Cotangent cb = ca; cb.B = B.data();
  printf("D=%d T=2^%d thr=%d N=%lld  fwd %.1f  fwdJ %.1f  pg_a %.1f  pg_aB %.1f ms\n", D, T, th, (long long)n,
    ms([&] { hashgrid_fwd_cpu(c, lv, kFloat32, run, n, x.data(), p.data(), nullptr, y.data(), nullptr, nullptr); }),
    ms([&] { hashgrid_fwd_cpu(c, lv, kFloat32, run, n, x.data(), p.data(), nullptr, y.data(), J.data(), nullptr); }),
    ms([&] { hashgrid_param_grad_cpu(c, lv, kFloat32, run, n, x.data(), ca, gr.data()); }),
    ms([&] { hashgrid_param_grad_cpu(c, lv, kFloat32, run, n, x.data(), cb, gr.data()); }));
  // Bitwise fingerprints (FNV-1a over the bytes) of y, dy/dx and the gradient: two builds agree bit for bit
  // exactly when these do.
  auto fnv = [](const std::vector<float>& v) { uint64_t h = 1469598103934665603ull;
    const unsigned char* b = reinterpret_cast<const unsigned char*>(v.data());
    for (size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ull; return h; };
  printf("fingerprint y %016llx J %016llx grad %016llx\n", (unsigned long long)fnv(y), (unsigned long long)fnv(J),
         (unsigned long long)fnv(gr));
}
