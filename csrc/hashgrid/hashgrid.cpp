// Level table and the one place each op branches between CPU and CUDA.
#include "hashgrid/hashgrid.h"

#include <cmath>
#include <limits>
#include <string>

namespace morphbias {

void throw_invalid_argument(const char* what, int got) {
  throw std::invalid_argument(std::string(what) + std::to_string(got));
}

void validate_config(const HashGridConfig& c) {
  MB_CHECK_ARG(c.n_input_dims == 2 || c.n_input_dims == 3,
               "n_input_dims must be 2 or 3, got " + std::to_string(c.n_input_dims));
  MB_CHECK_ARG(c.n_levels >= 1 && c.n_levels <= kMaxLevels,
               "n_levels must be in 1..32, got " + std::to_string(c.n_levels));
  const int F = c.n_features_per_level;
  MB_CHECK_ARG(F == 1 || F == 2 || F == 4 || F == 8,
               "n_features_per_level must be 1, 2, 4 or 8, got " + std::to_string(F));
  MB_CHECK_ARG(c.log2_hashmap_size >= 10 && c.log2_hashmap_size <= 24,
               "log2_hashmap_size must be in 10..24, got " + std::to_string(c.log2_hashmap_size));
  MB_CHECK_ARG(c.base_resolution >= 2, "base_resolution must be >= 2, got " + std::to_string(c.base_resolution));
  MB_CHECK_ARG(std::isfinite(c.per_level_scale) && c.per_level_scale > 1.0f,
               "per_level_scale must be a finite number > 1, got " + std::to_string(c.per_level_scale));
  MB_CHECK_ARG(c.interpolation == kLinear || c.interpolation == kSmoothstep,
               "interpolation must be linear (0) or smoothstep (1)");
}

LevelTable make_level_table(const HashGridConfig& c) {
  validate_config(c);
  LevelTable lv;
  lv.n_levels = c.n_levels;
  const uint64_t max_size = uint64_t(1) << c.log2_hashmap_size;
  const float log2_b = std::log2(c.per_level_scale);  // float overloads: the C library's log2f/exp2f
  int64_t offset = 0;
  for (int l = 0; l < c.n_levels; ++l) {
    const float scale = std::exp2(static_cast<float>(l) * log2_b) * static_cast<float>(c.base_resolution) - 1.0f;
    // Grid corners are int32 (as in tiny-cuda-nn): the corner of x = 1, floor(scale + 0.5), must fit. Checked
    // in double: in float, ceil(scale) + 1 rounds back to scale near 2^31 and would pass.
    MB_CHECK_ARG(std::isfinite(scale) && static_cast<double>(scale) + 0.5 < 2147483648.0,
                 "level " + std::to_string(l) + " has more than 2^31 vertices per axis (grid corners are int32): "
                 "lower n_levels, base_resolution or per_level_scale");
    const uint32_t res = static_cast<uint32_t>(std::ceil(scale)) + 1u;
    // res^D, saturating at 2^40 (it is only compared against sizes <= 2^24).
    const uint64_t cap = uint64_t(1) << 40;
    uint64_t dense = 1;
    for (int d = 0; d < c.n_input_dims; ++d) dense = (res > cap / dense) ? cap : dense * res;
    uint64_t n = dense < max_size ? dense : max_size;
    n = (n + 7) / 8 * 8;
    const uint64_t size = n < max_size ? n : max_size;
    lv.scale[l] = scale;
    lv.resolution[l] = res;
    lv.size[l] = static_cast<uint32_t>(size);
    lv.hashed[l] = size < dense ? 1u : 0u;
    // A hashed level always has the full 2^log2_hashmap_size entries; the kernels mask instead of dividing.
    if (lv.hashed[l] && size != max_size) throw std::logic_error("hashed level without 2^log2_hashmap_size entries");
    lv.offset[l] = offset;
    offset += static_cast<int64_t>(size);
  }
  lv.n_entries = offset;
  return lv;
}

#if defined(MORPHBIAS_WITH_CUDA)
#define MB_DISPATCH(name, ...)                                   \
  if (run.device < 0) return name##_cpu(__VA_ARGS__);            \
  return name##_cuda(__VA_ARGS__);
#else
#define MB_DISPATCH(name, ...)                                   \
  if (run.device < 0) return name##_cpu(__VA_ARGS__);            \
  throw std::invalid_argument("morphbias_fast was built without CUDA: move the tensors to the CPU or "   \
                              "rebuild with MORPHBIAS_CUDA=ON (see README)");
#endif

void hashgrid_fwd(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n, const void* x,
                  const void* params, const void* dir, void* y, void* J, void* jvp) {
  MB_CHECK_ARG(!jvp || dir, "hashgrid_fwd: jvp needs dir");
  MB_DISPATCH(hashgrid_fwd, c, lv, dt, run, n, x, params, dir, y, J, jvp)
}
void hashgrid_input_grad(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                         const void* x, const void* params, Cotangent cot, void* dL_dx) {
  MB_CHECK_ARG((cot.b == nullptr) == (cot.g == nullptr), "hashgrid_input_grad: b and g come together");
  MB_DISPATCH(hashgrid_input_grad, c, lv, dt, run, n, x, params, cot, dL_dx)
}
void hashgrid_param_grad(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                         const void* x, Cotangent cot, void* dL_dparams) {
  MB_CHECK_ARG((cot.b == nullptr) == (cot.g == nullptr), "hashgrid_param_grad: b and g come together");
  MB_DISPATCH(hashgrid_param_grad, c, lv, dt, run, n, x, cot, dL_dparams)
}
void hashgrid_corner_index(const HashGridConfig& c, const LevelTable& lv, DType dt, Launch run, int64_t n,
                           const void* x, int64_t* index) {
  MB_DISPATCH(hashgrid_corner_index, c, lv, dt, run, n, x, index)
}

}  // namespace morphbias
