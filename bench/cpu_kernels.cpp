// Milliseconds of each CPU kernel alone (no Python, no autograd): forward, forward with dy/dx, parameter
// gradient of a loss on y, and on y and dy/dx; N (2^18) uniform points, L = 16, F = 2, float32, median of 5.
// Build and run from the repository root (bench/RESULTS.md, "CPU speed: staged blocks"):
//   g++ -O3 -std=gnu++17 -fopenmp -Icsrc bench/cpu_kernels.cpp csrc/hashgrid/hashgrid.cpp
//       csrc/hashgrid/hashgrid_cpu.cpp -o /tmp/cpu_kernels   (one line)
//   /tmp/cpu_kernels D LOG2_TABLE [THREADS [N]]
#include <chrono>
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
  double s = 0; for (float v : gr) s += v; printf("checksum %g\n", s);
}
