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
// GEMV (m == 1, groups >= 16): one row at a time instead (see run_rows_gemv), so that a thread's
// weights stream from DRAM front to back, prefetched ahead; the 8-row tile reads 8 streams a row
// apart. There the widening uses masks and shifts instead of vpmovzxbw / vpmovsxbw (dot32).
#include <cstdint>

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

// --- Row GEMV (m == 1) ----------------------------------------------------------------------------

constexpr size_t kGroupBlock = 8;  // groups reduced together = ymm int32 lanes

// Bytes ahead of the weight being read that run_rows_gemv prefetches (as the avx512vnni GEMV: the
// hardware prefetcher alone does not keep one thread's stream at DRAM speed).
constexpr size_t kPrefetchAhead = 4096;

// Widening without shuffles: a 16-bit lane holds an even and an odd byte; the even ones are
// (w & 0xff) and ((a << 8) >> 8 arithmetic), the odd ones (w >> 8) and (a >> 8 arithmetic), and
// vpmaddwd of the s16 pairs cannot saturate (|255 * 127 * 2| << 2^31). Which products are summed
// first does not matter: the integer sum is exact.
struct SplitActs {
  __m256i even, odd;
};
inline SplitActs split_acts(__m256i a) {
  return {_mm256_srai_epi16(_mm256_slli_epi16(a, 8), 8), _mm256_srai_epi16(a, 8)};
}

// acc += the products of 32 u8 weights and 32 (split) s8 activations, in 8 int32 lanes.
inline __m256i dot32(__m256i acc, __m256i w, SplitActs a) {
  const __m256i we = _mm256_and_si256(w, _mm256_set1_epi16(0x00FF));
  const __m256i wo = _mm256_srli_epi16(w, 8);
  return _mm256_add_epi32(
      acc, _mm256_add_epi32(_mm256_madd_epi16(we, a.even), _mm256_madd_epi16(wo, a.odd)));
}

// The steps of a group of `len` bytes: whole 32-byte steps, then one 16-byte step if >= 16 bytes
// remain (upper half zero), then the last < 16 bytes as exact scalar ints: no load reaches past the
// group's bytes. Step s covers bytes [32 s, 32 s + 32) of the group.
inline size_t group_steps(size_t len) { return len / 32 + (len % 32 >= 16); }
inline __m256i load_step(const void* p, size_t t, size_t len) {
  const char* c = static_cast<const char*>(p) + t;
  return t + 32 <= len ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c))
                       : _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
}

// Activations split once per call (they are the same for every row), into a stack buffer of this
// many bytes: SplitActs of step s of group g at [g * steps per group + s]. The rows then load
// 2 x 32 bytes of split activations per 32 weight bytes instead of shifting 32 activation bytes
// three times. When the split of k does not fit (k > ~16K), the rows shift on the fly.
constexpr size_t kSplitBytes = 32768;

// One 32-byte step (16 when kHalf: the upper half zero) of weights w and activations a (or, kSplit,
// their split as[i]).
template <bool kSplit, bool kHalf>
inline __m256i step(__m256i acc, const uint8_t* w, const int8_t* a, const SplitActs* as, size_t i) {
  __m256i wv = kHalf ? _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)))
                     : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  __asm__("" : "+x"(wv));  // one load: GCC otherwise folds it into both the vpand and the vpsrlw
  if (kSplit) return dot32(acc, wv, as[i]);
  const __m256i av = kHalf ? _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)))
                           : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  return dot32(acc, wv, split_acts(av));
}

inline void prefetch_ahead(const uint8_t* w) {
  _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetchAhead), _MM_HINT_T0);
}

// The integer dot of one group of `len` bytes as 8 int32 lanes to be summed: 64-byte steps (two
// accumulators, a prefetch each), then at most one 32- and one 16-byte step (a prefetch when the
// step starts in the first half of a cache line), then the last < 16 bytes as exact scalar ints.
// kSplit: `as` holds the group's split activations (else unused). kLen != 0: len == kLen.
template <size_t kLen, bool kSplit>
inline __m256i group_dot(const uint8_t* w, const int8_t* a, const SplitActs* as, size_t len) {
  if (kLen != 0) len = kLen;
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  size_t t = 0;
  for (; t + 64 <= len; t += 64) {
    prefetch_ahead(w + t);
    acc0 = step<kSplit, false>(acc0, w + t, a + t, as, t / 32);
    acc1 = step<kSplit, false>(acc1, w + t + 32, a + t + 32, as, t / 32 + 1);
  }
  if (len - t >= 32) {
    if ((reinterpret_cast<uintptr_t>(w + t) & 32) == 0) prefetch_ahead(w + t);
    acc0 = step<kSplit, false>(acc0, w + t, a + t, as, t / 32);
    t += 32;
  }
  if (len - t >= 16) {
    if ((reinterpret_cast<uintptr_t>(w + t) & 32) == 0) prefetch_ahead(w + t);
    acc1 = step<kSplit, true>(acc1, w + t, a + t, as, t / 32);
    t += 16;
  }
  __m256i acc = _mm256_add_epi32(acc0, acc1);
  if (t < len) {
    int32_t s = 0;
    for (; t < len; ++t) s += static_cast<int32_t>(w[t]) * a[t];
    acc = _mm256_add_epi32(acc, _mm256_setr_epi32(s, 0, 0, 0, 0, 0, 0, 0));
  }
  return acc;
}

// One token, rows [n0, n1), one row at a time, for groups of 16 bytes or more: a thread's weights
// (and their scales / mins) are read front to back as one stream, prefetched ahead (the 8-row
// dot tiles read 8 streams a row apart). The integer sums of 8 groups are reduced together
// (hsum8x8), their float terms computed 8 at a time, then added to the row's sum one by one in
// group order (the kernels.h order). kGroup != 0: group == kGroup.
template <size_t kGroup, bool kSplit>
void run_rows(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group, const int8_t* a,
              const SplitActs* split, const float* d, const int32_t* sum, float* y, size_t n0,
              size_t n1) {
  if (kGroup != 0) group = kGroup;
  const size_t groups = (k + group - 1) / group;
  const size_t full_groups = k / group;
  const float* params_end = reinterpret_cast<const float*>(p + n1 * groups);
  const size_t steps = group_steps(group);  // per full group (the last group may have fewer)
  // Activation scales / sums of a partial last block (groups % 8 != 0), zero-padded once per call
  // rather than per row (a per-row copy through the stack cost a store-forwarding stall per row).
  __m256 tail_vd = _mm256_setzero_ps(), tail_va = _mm256_setzero_ps();
  if (groups % kGroupBlock != 0) {
    const size_t g0 = groups - groups % kGroupBlock;
    alignas(32) float td[kGroupBlock] = {};
    alignas(32) int32_t ts[kGroupBlock] = {};
    for (size_t i = 0; g0 + i < groups; ++i) {
      td[i] = d[g0 + i];
      ts[i] = sum[g0 + i];
    }
    tail_vd = _mm256_load_ps(td);
    tail_va = _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(ts)));
  }
  for (size_t r = n0; r < n1; ++r) {
    const uint8_t* qr = q + r * k;
    const float* pr = reinterpret_cast<const float*>(p + r * groups);  // (group, {scale, min})
    float facc = 0.0f;
    for (size_t g0 = 0; g0 < groups; g0 += kGroupBlock) {
      const size_t nb = groups - g0 < kGroupBlock ? groups - g0 : kGroupBlock;
      // The block's scales / mins (64 bytes) a weight prefetch distance ahead, in their units.
      _mm_prefetch(reinterpret_cast<const char*>(pr + 2 * g0) + 8 * kPrefetchAhead / group,
                   _MM_HINT_T0);
      __m256i acc[kGroupBlock];
      if (g0 + kGroupBlock <= full_groups) {  // the common case: 8 full groups, no branches
        for (size_t i = 0; i < kGroupBlock; ++i) {
          const size_t g = g0 + i, k0 = g * group;
          const SplitActs* as = kSplit ? split + g * steps : nullptr;
          acc[i] = group_dot<kGroup, kSplit>(qr + k0, a + k0, as, group);
        }
      } else {
        for (size_t i = 0; i < kGroupBlock; ++i) {
          const size_t g = g0 + i, k0 = g * group;
          const SplitActs* as = kSplit && g < groups ? split + g * steps : nullptr;
          if (g < full_groups)
            acc[i] = group_dot<kGroup, kSplit>(qr + k0, a + k0, as, group);
          else if (g < groups)
            acc[i] = group_dot<0, kSplit>(qr + k0, a + k0, as, k - k0);
          else
            acc[i] = _mm256_setzero_si256();
        }
      }
      const __m256i isum = hsum8x8(acc);
      // Scales / mins, activation scales and sums of the block: plain loads while they stay
      // inside this call's rows / the row's groups, else copied group by group.
      const float* pb = pr + 2 * g0;
      __m256 lo, hi, vd, va;
      if (pb + 2 * kGroupBlock <= params_end) {
        lo = _mm256_loadu_ps(pb);
        hi = _mm256_loadu_ps(pb + 8);
      } else {
        alignas(32) float tp[2 * kGroupBlock] = {};
        for (size_t i = 0; i < 2 * nb; ++i) tp[i] = pb[i];
        lo = _mm256_load_ps(tp);
        hi = _mm256_load_ps(tp + 8);
      }
      if (nb == kGroupBlock) {
        vd = _mm256_loadu_ps(d + g0);
        va = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sum + g0)));
      } else {
        vd = tail_vd;
        va = tail_va;
      }
      // lo = [s0 m0 s1 m1 | s2 m2 s3 m3], hi = [s4 m4 s5 m5 | s6 m6 s7 m7].
      const __m256 vs = _mm256_castpd_ps(_mm256_permute4x64_pd(
          _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
      const __m256 vm = _mm256_castpd_ps(_mm256_permute4x64_pd(
          _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
      const __m256 sd = _mm256_mul_ps(vs, vd);
      const __m256 md = _mm256_mul_ps(vm, vd);
      const __m256 term =
          _mm256_add_ps(_mm256_mul_ps(sd, _mm256_cvtepi32_ps(isum)), _mm256_mul_ps(md, va));
      alignas(32) float tt[kGroupBlock];
      _mm256_store_ps(tt, term);
      for (size_t i = 0; i < nb; ++i) facc = facc + tt[i];
    }
    y[r] = facc;
  }
}

template <size_t kGroup>
void run_rows_gemv(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                   const int8_t* a, const float* d, const int32_t* sum, float* y, size_t n0,
                   size_t n1) {
  if (kGroup != 0) group = kGroup;
  const size_t groups = (k + group - 1) / group;
  const size_t steps = group_steps(group);
  if (groups * steps > kSplitBytes / sizeof(SplitActs)) {
    run_rows<kGroup, false>(q, p, k, group, a, nullptr, d, sum, y, n0, n1);
    return;
  }
  SplitActs split[kSplitBytes / sizeof(SplitActs)];
  for (size_t g = 0; g < groups; ++g) {
    const size_t k0 = g * group;
    const size_t len = k - k0 < group ? k - k0 : group;
    for (size_t s = 0; s < group_steps(len); ++s)
      split[g * steps + s] = split_acts(load_step(a + k0, 32 * s, len));
  }
  run_rows<kGroup, true>(q, p, k, group, a, split, d, sum, y, n0, n1);
}

}  // namespace

void u8s8_matmul_avx2(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                      const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                      size_t ldy, size_t n0, size_t n1) {
  if (n1 <= n0 || m == 0) return;
  if (m == 1 && group == 16) {
    run_rows_gemv<16>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1 && group == 32) {
    run_rows_gemv<32>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1 && group == 64) {
    run_rows_gemv<64>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1 && group == 128) {
    run_rows_gemv<128>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1 && group >= 16) {
    run_rows_gemv<0>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1) {
    run_tiles<1, 8, DotTile<1, 8>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  } else if (m <= 3) {
    run_tiles<2, 4, DotTile<2, 4>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  } else {
    run_tiles<4, 2, DotTile<4, 2>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  }
}

}  // namespace kernels
}  // namespace ember
