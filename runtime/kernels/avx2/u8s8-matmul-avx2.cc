// Zero-one u8 x s8 matmul, AVX2.
//
// Integer part: u8 weights and s8 activations are widened to s16 (vpmovzxbw / vpmovsxbw) and
// multiplied with vpmaddwd — it cannot saturate (|255 * 127 * 2| << 2^31), and on Zen 3 it runs on
// the same two pipes as vpmaddubsw, so the pmaddubsw route (q^0x80 and the sign trick, plus the
// vpmaddwd it needs anyway) does the same number of multiply uops for more ALU work.
// A tile of MR tokens x NR rows (MR * NR = 8) keeps one 8 x int32 accumulator per output; after each
// group the eight are reduced with one hadd tree into lane i * NR + j, and the float epilogue
// (kernels.h order: acc + ((s*d)*isum + (m*d)*asum)) runs on the 8 lanes at once.
// Edge tiles repeat the last valid token / row (computed, not stored), so every output is produced
// by the same instruction sequence wherever it sits: results do not depend on n0/n1 or m.
#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

using namespace avx2;

template <int MR, int NR>
struct DotTile {
static inline void compute(const uint8_t* const* qr, const ZeroOneParams* const* pr, const int8_t* const* ar,
                 const float* const* dr, const int32_t* const* sr, size_t k, size_t group,
                 size_t groups, float* out /* (MR * NR) */) {
  static_assert(MR * NR == 8, "one 8-lane vector per tile");
  __m256 facc = _mm256_setzero_ps();
  for (size_t g = 0; g < groups; ++g) {
    const size_t k0 = g * group;
    const size_t len = k - k0 < group ? k - k0 : group;
    __m256i acc[8];
    for (int l = 0; l < 8; ++l) acc[l] = _mm256_setzero_si256();
    size_t t = 0;
    for (; t + 16 <= len; t += 16) {
      __m256i wv[NR];
      for (int j = 0; j < NR; ++j)
        wv[j] = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qr[j] + k0 + t)));
      for (int i = 0; i < MR; ++i) {
        const __m256i av =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ar[i] + k0 + t)));
        for (int j = 0; j < NR; ++j)
          acc[i * NR + j] = _mm256_add_epi32(acc[i * NR + j], _mm256_madd_epi16(av, wv[j]));
      }
    }
    __m256i isum = hsum8x8(acc);
    if (t < len) {  // partial 16-block (odd group lengths, partial last group): exact scalar ints
      alignas(32) int32_t tail[8];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) {
          int32_t s = 0;
          for (size_t u = t; u < len; ++u) s += static_cast<int32_t>(qr[j][k0 + u]) * ar[i][k0 + u];
          tail[i * NR + j] = s;
        }
      isum = _mm256_add_epi32(isum, _mm256_load_si256(reinterpret_cast<const __m256i*>(tail)));
    }
    facc = group_epilogue<MR, NR>(pr, dr, sr, g, isum, facc);
  }
  _mm256_storeu_ps(out, facc);
}
};

}  // namespace

void u8s8_matmul_avx2(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                      const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                      size_t ldy, size_t n0, size_t n1) {
  if (n1 <= n0 || m == 0) return;
  if (m == 1) {
    run_tiles<1, 8, DotTile<1, 8>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  } else if (m <= 3) {
    run_tiles<2, 4, DotTile<2, 4>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  } else {
    run_tiles<4, 2, DotTile<4, 2>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  }
}

}  // namespace kernels
}  // namespace ember
