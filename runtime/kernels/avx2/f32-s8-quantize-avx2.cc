// Per-group s8 activation quantization, AVX2: exact max|x|, the same d and 1/d as scalar, and
// cvtps2dq's round-to-nearest-even (the scalar kernel's nearbyint), so a, d and sums are identical.
#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_s8_quantize_avx2(const float* x, size_t m, size_t k, size_t group, size_t act_group,
                          int8_t* a, float* d, int32_t* sum, float* msum) {
  const size_t acts = (k + act_group - 1) / act_group;
  const size_t groups = (k + group - 1) / group;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  for (size_t i = 0; i < m; ++i) {
    for (size_t h = 0; h < acts; ++h) {
      const size_t k0 = h * act_group;
      const size_t len = k - k0 < act_group ? k - k0 : act_group;
      const float* xg = x + i * k + k0;
      int8_t* ag = a + i * k + k0;
      __m256 vmax = _mm256_setzero_ps();
      size_t t = 0;
      for (; t + 8 <= len; t += 8)
        vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(xg + t), abs_mask));
      alignas(32) float mv[8];
      _mm256_store_ps(mv, vmax);
      float amax = 0.0f;
      for (int l = 0; l < 8; ++l) amax = mv[l] > amax ? mv[l] : amax;
      for (; t < len; ++t) {
        const float v = std::fabs(xg[t]);
        amax = v > amax ? v : amax;
      }
      const float dg = amax / 127.0f;
      const float id = dg > 0.0f ? 1.0f / dg : 0.0f;
      const __m256 vid = _mm256_set1_ps(id);
      __m256i vsum = _mm256_setzero_si256();
      t = 0;
      for (; t + 32 <= len; t += 32) {
        __m256i q[4];
        for (int u = 0; u < 4; ++u) {
          q[u] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + t + 8 * u), vid));
          q[u] = _mm256_min_epi32(_mm256_max_epi32(q[u], lo), hi);
          vsum = _mm256_add_epi32(vsum, q[u]);
        }
        const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
        const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i b = _mm256_packs_epi16(p01, p23);
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(ag + t), b);
      }
      for (; t + 8 <= len; t += 8) {  // (activation groups of 8 to 24 values)
        __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + t), vid));
        q = _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
        vsum = _mm256_add_epi32(vsum, q);
        const __m128i p16 =
            _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(ag + t), _mm_packs_epi16(p16, p16));
      }
      alignas(32) int32_t sv[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sv), vsum);
      int32_t s = sv[0] + sv[1] + sv[2] + sv[3] + sv[4] + sv[5] + sv[6] + sv[7];
      for (; t < len; ++t) {
        float v = std::nearbyint(xg[t] * id);
        v = v > 127.0f ? 127.0f : (v >= -127.0f ? v : -127.0f);  // NaN: -127, as the x86 lanes
        const int32_t qv = static_cast<int32_t>(v);
        ag[t] = static_cast<int8_t>(qv);
        s += qv;
      }
      d[i * acts + h] = dg;
      sum[i * acts + h] = s;
    }
    act_group_msums(k, group, act_group, d + i * acts, sum + i * acts, msum + i * groups);
  }
}

}  // namespace kernels
}  // namespace ember
