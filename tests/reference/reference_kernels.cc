#include "reference/reference_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ember_ref {

void quantize_acts_s8(const float* x, size_t m, size_t k, size_t group, size_t act_group, int8_t* a,
                      float* d, int32_t* sum, double* msum) {
  const size_t acts = (k + act_group - 1) / act_group, groups = (k + group - 1) / group;
  for (size_t i = 0; i < m; ++i) {
    for (size_t h = 0; h < acts; ++h) {
      const size_t k0 = h * act_group, k1 = std::min(k, k0 + act_group);
      float amax = 0.0f;
      for (size_t t = k0; t < k1; ++t) amax = std::max(amax, std::fabs(x[i * k + t]));
      const float dg = amax / 127.0f;
      const float inv = dg > 0.0f ? 1.0f / dg : 0.0f;
      int32_t s = 0;
      for (size_t t = k0; t < k1; ++t) {
        const float prod = x[i * k + t] * inv;
        long v = std::lrint(static_cast<double>(prod));  // default mode: ties to even
        if (v > 127) v = 127;
        if (v < -127) v = -127;
        a[i * k + t] = static_cast<int8_t>(v);
        s += static_cast<int32_t>(v);
      }
      d[i * acts + h] = dg;
      sum[i * acts + h] = s;
    }
    for (size_t g = 0; g < groups; ++g) {
      double ms = 0;
      for (size_t h = 0; h < acts; ++h)
        if (h * act_group / group == g) ms += double(d[i * acts + h]) * sum[i * acts + h];
      msum[i * groups + g] = ms;
    }
  }
}

std::vector<int64_t> u8s8_group_dots(const uint8_t* q, size_t n, size_t k, size_t group,
                                     const int8_t* a, size_t m) {
  const size_t groups = (k + group - 1) / group;
  std::vector<int64_t> out(m * n * groups, 0);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j)
      for (size_t t = 0; t < k; ++t)
        out[(i * n + j) * groups + t / group] +=
            static_cast<int64_t>(q[j * k + t]) * static_cast<int64_t>(a[i * k + t]);
  return out;
}

void matmul_u8s8(const uint8_t* q, const ember::ZeroOneParams* p, size_t n, size_t k, size_t group,
                 size_t act_group, const int8_t* a, const float* d, const int32_t* sum, size_t m,
                 double* y, double* mag) {
  const size_t groups = (k + group - 1) / group, acts = (k + act_group - 1) / act_group;
  const std::vector<int64_t> dots = u8s8_group_dots(q, n, k, act_group, a, m);
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double acc = 0.0, mg = 0.0;
      for (size_t h = 0; h < acts; ++h) {
        const size_t g = h * act_group / group;
        const double s = p[j * groups + g].scale, mn = p[j * groups + g].min;
        const double dd = d[i * acts + h];
        const double t1 = s * dd * static_cast<double>(dots[(i * n + j) * acts + h]);
        const double t2 = mn * dd * static_cast<double>(sum[i * acts + h]);
        acc += t1 + t2;
        mg += std::fabs(t1) + std::fabs(t2);
      }
      y[i * n + j] = acc;
      if (mag) mag[i * n + j] = mg;
    }
  }
}

void matmul_f32(const float* w, size_t n, size_t k, const float* x, size_t m, double* y,
                double* mag) {
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double acc = 0.0, mg = 0.0;
      for (size_t t = 0; t < k; ++t) {
        const double v = static_cast<double>(w[j * k + t]) * x[i * k + t];
        acc += v;
        mg += std::fabs(v);
      }
      y[i * n + j] = acc;
      if (mag) mag[i * n + j] = mg;
    }
  }
}

uint16_t f32_to_f16_rne(float f) {
  // Nearest f16 by search over the exponent (plain and slow, independent of core/half.h).
  const double v = std::fabs(static_cast<double>(f));
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (std::isnan(f)) return 0x7E00;
  if (v >= 65520.0) return sign | 0x7C00;
  int e = v < std::ldexp(1.0, -14) ? -14 : std::ilogb(v);
  const double ulp = std::ldexp(1.0, e - 10);
  const double m = std::nearbyint(v / ulp);  // ties to even
  const double r = m * ulp;
  if (r < std::ldexp(1.0, -14)) return sign | static_cast<uint16_t>(m);  // subnormal (or 0)
  int er = std::ilogb(r);
  const uint16_t man = static_cast<uint16_t>(std::ldexp(r, 10 - er) - 1024.0);
  return sign | static_cast<uint16_t>(((er + 15) << 10) | man);
}

float f16_to_f32(uint16_t h) {
  const int sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (exp == 0x1f) {
    v = man ? NAN : INFINITY;
  } else if (exp == 0) {
    v = std::ldexp(static_cast<double>(man), -24);
  } else {
    v = std::ldexp(static_cast<double>(man + 1024), exp - 25);
  }
  return static_cast<float>(sign ? -v : v);
}

float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void rmsnorm(const float* x, const float* w, size_t n, float eps, double* y) {
  double ss = 0.0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  for (size_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void silu_mul(const float* gate, const float* up, size_t n, double* y) {
  for (size_t i = 0; i < n; ++i)
    y[i] = gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i];
}

void softmax(const float* x, size_t n, double* y) {
  double mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += std::exp(x[i] - mx);
  for (size_t i = 0; i < n; ++i) y[i] = std::exp(x[i] - mx) / s;
}

void attention(const float* q, const float* k, const float* v, size_t head_dim, size_t n_keys,
               size_t kv_stride, double* p, double* out, double* mag) {
  std::vector<double> s(n_keys);
  double mx = -INFINITY;
  for (size_t t = 0; t < n_keys; ++t) {
    double dot = 0.0;
    for (size_t d = 0; d < head_dim; ++d) dot += static_cast<double>(q[d]) * k[t * kv_stride + d];
    s[t] = dot / std::sqrt(static_cast<double>(head_dim));
    mx = std::max(mx, s[t]);
  }
  double sum = 0.0;
  for (size_t t = 0; t < n_keys; ++t) sum += std::exp(s[t] - mx);
  for (size_t t = 0; t < n_keys; ++t) p[t] = std::exp(s[t] - mx) / sum;
  for (size_t d = 0; d < head_dim; ++d) {
    out[d] = 0.0;
    mag[d] = 0.0;
    for (size_t t = 0; t < n_keys; ++t) {
      out[d] += p[t] * v[t * kv_stride + d];
      mag[d] += p[t] * std::fabs(v[t * kv_stride + d]);
    }
  }
}

}  // namespace ember_ref
