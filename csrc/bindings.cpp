// The only file that includes pybind11: module morphbias_fast._C.
// Tensors cross this boundary as raw pointers (tensor.data_ptr()) plus sizes, a dtype code, the device
// index and torch's current CUDA stream, so nothing here depends on torch headers. The Python wrappers in
// morphbias_fast/ops/ validate every tensor before calling in.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "hashgrid/cpu_isa.h"
#include "hashgrid/hashgrid.h"

namespace py = pybind11;
using namespace morphbias;

namespace {

template <typename T>
const T* cptr(uintptr_t p) { return reinterpret_cast<const T*>(p); }

Launch make_launch(int device, uintptr_t stream, int num_threads) {
  Launch run;
  run.device = device;
  run.stream = stream;
  run.num_threads = num_threads > 0 ? num_threads : 1;
  return run;
}

Cotangent make_cot(uintptr_t a, uintptr_t B, uintptr_t b, uintptr_t g) {
  Cotangent cot;
  cot.a = cptr<void>(a);
  cot.B = cptr<void>(B);
  cot.b = cptr<void>(b);
  cot.g = cptr<void>(g);
  return cot;
}

py::dict build_info() {
  py::dict d;
  d["version"] = MORPHBIAS_VERSION;
#if defined(MORPHBIAS_WITH_CUDA)
  d["cuda"] = true;
  d["cuda_archs"] = std::string(MORPHBIAS_CUDA_ARCHS);
  d["cuda_compiler_version"] = std::string(MORPHBIAS_CUDA_VERSION);
#else
  d["cuda"] = false;
  d["cuda_archs"] = std::string();
  d["cuda_compiler_version"] = std::string();
#endif
#if defined(_OPENMP)
  d["openmp"] = true;
  d["openmp_max_threads"] = omp_get_max_threads();
#else
  d["openmp"] = false;
  d["openmp_max_threads"] = 1;
#endif
  d["cpu_isa"] = cpu_isa();
  d["cpu_isas"] = cpu_isas();
  d["cxx_compiler"] = std::string(MORPHBIAS_CXX_COMPILER);
  d["build_type"] = std::string(MORPHBIAS_BUILD_TYPE);
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "morphbias-fast compiled kernels (CPU always, CUDA when built with it)";
  m.def("build_info", &build_info,
        "What was compiled: version, CUDA, architectures, OpenMP, the CPU kernel builds this CPU can run.");
  m.def("cpu_isas", &cpu_isas, "CPU kernel builds compiled and runnable here (baseline, avx2, avx512), baseline first.");
  m.def("cpu_isa", &cpu_isa, "The CPU kernel build in use (the best runnable one unless MORPHBIAS_CPU_ISA chose).");
  m.def("set_cpu_isa", &set_cpu_isa, py::arg("name"),
        "Use CPU kernel build `name` (one of cpu_isas()); results are bitwise the same, only speed differs.");

  py::class_<HashGridConfig>(m, "HashGridConfig")
      .def(py::init([](int D, int L, int F, int log2_size, int base_res, float scale, int interp) {
             HashGridConfig c;
             c.n_input_dims = D;
             c.n_levels = L;
             c.n_features_per_level = F;
             c.log2_hashmap_size = log2_size;
             c.base_resolution = base_res;
             c.per_level_scale = scale;
             c.interpolation = interp;
             validate_config(c);
             return c;
           }),
           py::arg("n_input_dims"), py::arg("n_levels"), py::arg("n_features_per_level"),
           py::arg("log2_hashmap_size"), py::arg("base_resolution"), py::arg("per_level_scale"),
           py::arg("interpolation"))
      .def_readonly("n_input_dims", &HashGridConfig::n_input_dims)
      .def_readonly("n_levels", &HashGridConfig::n_levels)
      .def_readonly("n_features_per_level", &HashGridConfig::n_features_per_level);

  py::class_<LevelTable>(m, "LevelTable")
      .def_readonly("n_levels", &LevelTable::n_levels)
      .def_readonly("n_entries", &LevelTable::n_entries)
      .def("as_dict", [](const LevelTable& lv) {
        py::dict d;
        std::vector<float> scale(lv.scale, lv.scale + lv.n_levels);
        std::vector<uint32_t> res(lv.resolution, lv.resolution + lv.n_levels);
        std::vector<uint32_t> size(lv.size, lv.size + lv.n_levels);
        std::vector<bool> hashed(lv.hashed, lv.hashed + lv.n_levels);
        std::vector<int64_t> offset(lv.offset, lv.offset + lv.n_levels);
        d["scale"] = scale;
        d["resolution"] = res;
        d["size"] = size;
        d["hashed"] = hashed;
        d["offset"] = offset;
        d["n_entries"] = lv.n_entries;
        return d;
      });
  m.def("make_level_table", &make_level_table, py::arg("config"));

  auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def(
      "hashgrid_fwd",
      [](const HashGridConfig& c, const LevelTable& lv, int dtype, int device, uintptr_t stream, int threads,
         int64_t n, uintptr_t x, uintptr_t params, uintptr_t dir, uintptr_t y, uintptr_t J, uintptr_t jvp) {
        hashgrid_fwd(c, lv, static_cast<DType>(dtype), make_launch(device, stream, threads), n, cptr<void>(x),
                     cptr<void>(params), cptr<void>(dir), reinterpret_cast<void*>(y), reinterpret_cast<void*>(J),
                     reinterpret_cast<void*>(jvp));
      },
      py::arg("config"), py::arg("levels"), py::arg("dtype"), py::arg("device"), py::arg("stream"), py::arg("threads"),
      py::arg("n"), py::arg("x"), py::arg("params"), py::arg("dir"), py::arg("y"), py::arg("J"), py::arg("jvp"), nogil,
      "y [N,L*F], J [N,L*F,D], jvp [N,L*F] from x [N,D] and params [E*F]; 0 = not wanted.");
  m.def(
      "hashgrid_input_grad",
      [](const HashGridConfig& c, const LevelTable& lv, int dtype, int device, uintptr_t stream, int threads,
         int64_t n, uintptr_t x, uintptr_t params, uintptr_t a, uintptr_t B, uintptr_t b, uintptr_t g,
         uintptr_t dL_dx) {
        hashgrid_input_grad(c, lv, static_cast<DType>(dtype), make_launch(device, stream, threads), n, cptr<void>(x),
                            cptr<void>(params), make_cot(a, B, b, g), reinterpret_cast<void*>(dL_dx));
      },
      py::arg("config"), py::arg("levels"), py::arg("dtype"), py::arg("device"), py::arg("stream"), py::arg("threads"),
      py::arg("n"), py::arg("x"), py::arg("params"), py::arg("a"), py::arg("B"), py::arg("b"), py::arg("g"),
      py::arg("dL_dx"), nogil, "dL_dx [N,D] (overwritten) for L = a.y + B:J (B dense or b outer g).");
  m.def(
      "hashgrid_param_grad",
      [](const HashGridConfig& c, const LevelTable& lv, int dtype, int device, uintptr_t stream, int threads,
         int64_t n, uintptr_t x, uintptr_t a, uintptr_t B, uintptr_t b, uintptr_t g, uintptr_t dL_dparams) {
        hashgrid_param_grad(c, lv, static_cast<DType>(dtype), make_launch(device, stream, threads), n, cptr<void>(x),
                            make_cot(a, B, b, g), reinterpret_cast<void*>(dL_dparams));
      },
      py::arg("config"), py::arg("levels"), py::arg("dtype"), py::arg("device"), py::arg("stream"), py::arg("threads"),
      py::arg("n"), py::arg("x"), py::arg("a"), py::arg("B"), py::arg("b"), py::arg("g"), py::arg("dL_dparams"), nogil,
      "dL_dparams [E*F] += gradient of L = a.y + B:J (B dense or b outer g).");
  m.def(
      "hashgrid_corner_index",
      [](const HashGridConfig& c, const LevelTable& lv, int dtype, int device, uintptr_t stream, int threads,
         int64_t n, uintptr_t x, uintptr_t index) {
        hashgrid_corner_index(c, lv, static_cast<DType>(dtype), make_launch(device, stream, threads), n,
                              cptr<void>(x), reinterpret_cast<int64_t*>(index));
      },
      py::arg("config"), py::arg("levels"), py::arg("dtype"), py::arg("device"), py::arg("stream"), py::arg("threads"),
      py::arg("n"), py::arg("x"), py::arg("index"), nogil,
      "index [N,L,2^D] int64: global table entry of every corner.");
}
