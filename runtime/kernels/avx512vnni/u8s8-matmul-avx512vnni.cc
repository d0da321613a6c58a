// Zero-one u8 x s8 matmul, AVX-512 VNNI (with AVX512BW/VL).
//
// vpdpbusd multiplies u8 by s8 and adds each four products into an int32 lane without saturation:
// exactly the zero-one weight (u8) x quantized activation (s8) product, no sign trick, no widening.
// The integer part of every group is exact, and the float epilogue is the kernels.h order, so the
// results are bit-identical to every other variant.
//
// Three paths:
// - Row GEMV (m == 1, groups of 16, 32 or more bytes; run_rows_gemv): one row at a time, so a
//   thread's weights stream front to back (prefetched 4 KiB ahead); the sums of 16 groups are
//   reduced together and a row's float terms added in group order one row late.
// - Dot tiles (m <= 3 otherwise, and any shape whose group does not fit the panel): the avx2 tiles of MR
//   tokens x NR rows with 8 ymm accumulators, vpdpbusd over 32 bytes per step and masked loads only for
//   the partial step (no scalar tail; masked loads do not train the prefetcher), then the avx2 hadd reduction and epilogue (avx2-common.h).
// - Panel tiles (m >= 4): 16 weight rows of a run of groups are transposed once into a panel
//   of (4-byte unit, row) dwords — zmm lane r holds row r's next four weights — so that one
//   vpdpbusd with an activation dword broadcast advances 16 outputs of one token, with no
//   horizontal reduction; the group epilogue then runs on 16 rows at once. The panel is reused by
//   every token of the call, which amortises the transpose. A unit that runs past a group's end
//   (group % 4 != 0) has zero weights there, and its activation bytes are read only up to the
//   group's end, so nothing outside the group contributes or is read.
// Edge rows / tokens repeat the last valid one (computed, not stored), as in the avx2 tiles.
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || \
    !defined(__AVX512VNNI__)
#error "runtime/kernels/avx512vnni/ files must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

#include <cstring>

#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

using namespace avx2;

// --- Dot tiles ------------------------------------------------------------------------------------

template <int MR, int NR>
struct VnniDotTile {
  static inline void compute(const uint8_t* const* qr, const ZeroOneParams* const* pr,
                             const int8_t* const* ar, const float* const* dr,
                             const int32_t* const* sr, size_t k, size_t group, size_t groups,
                             float* out /* (MR * NR) */) {
    static_assert(MR * NR == 8, "one 8-lane vector per tile");
    __m256 facc = _mm256_setzero_ps();
    for (size_t g = 0; g < groups; ++g) {
      const size_t k0 = g * group;
      const size_t len = k - k0 < group ? k - k0 : group;
      __m256i acc[8];
      for (int l = 0; l < 8; ++l) acc[l] = _mm256_setzero_si256();
      size_t t = 0;
      // Whole 32-byte steps with plain loads (masked loads do not train the hardware prefetcher
      // here: decode, which streams the weights from DRAM, ran at half speed with them).
      for (; t + 32 <= len; t += 32) {
        __m256i wv[NR];
        for (int j = 0; j < NR; ++j)
          wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qr[j] + k0 + t));
        for (int i = 0; i < MR; ++i) {
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar[i] + k0 + t));
          for (int j = 0; j < NR; ++j) acc[i * NR + j] = _mm256_dpbusd_epi32(acc[i * NR + j], wv[j], av);
        }
      }
      if (t < len) {  // the partial step: masked loads, zeros beyond the group
        const __mmask32 mask = (__mmask32{1} << (len - t)) - 1;
        __m256i wv[NR];
        for (int j = 0; j < NR; ++j) wv[j] = _mm256_maskz_loadu_epi8(mask, qr[j] + k0 + t);
        for (int i = 0; i < MR; ++i) {
          const __m256i av = _mm256_maskz_loadu_epi8(mask, ar[i] + k0 + t);
          for (int j = 0; j < NR; ++j) acc[i * NR + j] = _mm256_dpbusd_epi32(acc[i * NR + j], wv[j], av);
        }
      }
      facc = group_epilogue<MR, NR>(pr, dr, sr, g, hsum8x8(acc), facc);
    }
    _mm256_storeu_ps(out, facc);
  }
};

// --- Panel tiles ------------------------------------------------------------------------------------

constexpr size_t kRows = 16;             // rows per panel = zmm int32 lanes
constexpr size_t kPanelUnits = 512;      // 4-byte units per row in a panel: 16 rows x 2 KiB = 32 KiB
constexpr size_t kPanelMaxGroups = 128;  // groups per panel (their scales / mins: 16 KiB)
constexpr int kTokens = 8;               // tokens per register tile

// In place: lane u of r[j] (unit u of row j) -> lane j of r[u]. 16 x 16 dwords.
inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // Row quad q = rows 4q..4q+3: u[4q + c] has, in 128-bit lane L, unit 4L + c of those rows.
  for (int q = 0; q < 4; ++q) {
    u[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
  }
  // 4 x 4 transpose of 128-bit blocks for each c: r[4L + c] lane q = u[4q + c] lane L.
  for (int c = 0; c < 4; ++c) {
    const __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);
    const __m512i x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
    const __m512i x2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
    const __m512i x3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
    r[0 + c] = _mm512_shuffle_i32x4(x0, x2, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(x0, x2, 0xDD);
    r[8 + c] = _mm512_shuffle_i32x4(x1, x3, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(x1, x3, 0xDD);
  }
}

// Four activation bytes starting at a, of which only `n` (< 4) belong to the group, as one dword.
inline int32_t partial_unit(const int8_t* a, size_t n) {
  uint32_t v = 0;
  std::memcpy(&v, a, n);
  return static_cast<int32_t>(v);
}

inline int32_t load_unit(const int8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return v;
}

struct Panel {
  alignas(64) int32_t w[kPanelUnits * kRows];  // (unit, row)
  alignas(64) float scale[kPanelMaxGroups * kRows], min[kPanelMaxGroups * kRows];  // (group, row)
};

// Transposes groups [g0, g1) of the rows `row` into the panel.
void fill_panel(const uint8_t* const* row, const ZeroOneParams* const* prow, size_t k, size_t group,
                size_t g0, size_t g1, Panel* pn) {
  int32_t* dst = pn->w;
  for (size_t g = g0; g < g1; ++g) {
    const size_t k0 = g * group;
    const size_t len = k - k0 < group ? k - k0 : group;
    for (size_t t = 0; t < len; t += 64) {
      const size_t n = len - t < 64 ? len - t : 64;
      const __mmask64 mask = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
      __m512i r[16];
      if (n == 64) {  // plain loads where possible: they train the hardware prefetcher
        for (size_t j = 0; j < kRows; ++j) r[j] = _mm512_loadu_si512(row[j] + k0 + t);
      } else {
        for (size_t j = 0; j < kRows; ++j) r[j] = _mm512_maskz_loadu_epi8(mask, row[j] + k0 + t);
      }
      transpose16(r);
      const size_t units = (n + 3) / 4;
      for (size_t u = 0; u < units; ++u) _mm512_store_si512(dst + u * kRows, r[u]);
      dst += units * kRows;
    }
    for (size_t j = 0; j < kRows; ++j) {
      pn->scale[(g - g0) * kRows + j] = prow[j][g].scale;
      pn->min[(g - g0) * kRows + j] = prow[j][g].min;
    }
  }
}

// Tokens i0..i0+kTokens-1 (clamped to m - 1) x the panel's 16 rows over groups [g0, g1).
// facc holds the running float sums (zero before the first group of the row).
void panel_tokens(const Panel& pn, size_t k, size_t group, size_t g0, size_t g1,
                  const int8_t* const* ar, const float* const* dr, const int32_t* const* sr,
                  __m512 facc[kTokens]) {
  const int32_t* w = pn.w;
  for (size_t g = g0; g < g1; ++g) {
    const size_t k0 = g * group;
    const size_t len = k - k0 < group ? k - k0 : group;
    const size_t full = len / 4, rest = len % 4;
    __m512i acc[kTokens];
    for (int i = 0; i < kTokens; ++i) acc[i] = _mm512_setzero_si512();
    for (size_t u = 0; u < full; ++u) {
      const __m512i wv = _mm512_load_si512(w + u * kRows);
      for (int i = 0; i < kTokens; ++i)
        acc[i] = _mm512_dpbusd_epi32(acc[i], wv, _mm512_set1_epi32(load_unit(ar[i] + k0 + 4 * u)));
    }
    if (rest != 0) {
      const __m512i wv = _mm512_load_si512(w + full * kRows);
      for (int i = 0; i < kTokens; ++i)
        acc[i] = _mm512_dpbusd_epi32(acc[i], wv,
                                     _mm512_set1_epi32(partial_unit(ar[i] + k0 + 4 * full, rest)));
    }
    w += (full + (rest != 0)) * kRows;
    const __m512 vs = _mm512_load_ps(pn.scale + (g - g0) * kRows);
    const __m512 vm = _mm512_load_ps(pn.min + (g - g0) * kRows);
    for (int i = 0; i < kTokens; ++i) {
      const __m512 vd = _mm512_set1_ps(dr[i][g]);
      const __m512 va = _mm512_set1_ps(static_cast<float>(sr[i][g]));
      const __m512 sd = _mm512_mul_ps(vs, vd);
      const __m512 md = _mm512_mul_ps(vm, vd);
      const __m512 term =
          _mm512_add_ps(_mm512_mul_ps(sd, _mm512_cvtepi32_ps(acc[i])), _mm512_mul_ps(md, va));
      facc[i] = _mm512_add_ps(facc[i], term);
    }
  }
}

// Groups of one panel starting at g0: as many as fit kPanelUnits units and kPanelMaxGroups.
size_t panel_groups_end(size_t k, size_t group, size_t groups, size_t g0) {
  size_t units = 0, g = g0;
  while (g < groups && g - g0 < kPanelMaxGroups) {
    const size_t len = k - g * group < group ? k - g * group : group;
    const size_t gu = (len + 63) / 64 * 16;  // units written for the group (whole 64-byte blocks)
    if (units + gu > kPanelUnits) break;
    units += gu;
    ++g;
  }
  return g;
}

void run_panels(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group, const int8_t* a,
                const float* d, const int32_t* sum, size_t m, float* y, size_t ldy, size_t n0,
                size_t n1) {
  const size_t groups = (k + group - 1) / group;
  Panel pn;
  for (size_t j0 = n0; j0 < n1; j0 += kRows) {
    const uint8_t* row[kRows];
    const ZeroOneParams* prow[kRows];
    for (size_t j = 0; j < kRows; ++j) {
      const size_t jj = j0 + j < n1 ? j0 + j : n1 - 1;
      row[j] = q + jj * k;
      prow[j] = p + jj * groups;
    }
    const size_t nr = n1 - j0 < kRows ? n1 - j0 : kRows;
    const __mmask16 store_mask = static_cast<__mmask16>((1u << nr) - 1);
    for (size_t g0 = 0; g0 < groups;) {
      const size_t g1 = panel_groups_end(k, group, groups, g0);
      fill_panel(row, prow, k, group, g0, g1, &pn);
      for (size_t i0 = 0; i0 < m; i0 += kTokens) {
        const int8_t* ar[kTokens];
        const float* dr[kTokens];
        const int32_t* sr[kTokens];
        __m512 facc[kTokens];
        for (int i = 0; i < kTokens; ++i) {
          const size_t ii = i0 + i < m ? i0 + i : m - 1;
          ar[i] = a + ii * k;
          dr[i] = d + ii * groups;
          sr[i] = sum + ii * groups;
          // Panels after the first continue the row's running sums, kept in y between panels.
          facc[i] = g0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(store_mask, y + ii * ldy + j0);
        }
        panel_tokens(pn, k, group, g0, g1, ar, dr, sr, facc);
        for (int i = 0; i < kTokens && i0 + i < m; ++i)
          _mm512_mask_storeu_ps(y + (i0 + i) * ldy + j0, store_mask, facc[i]);
      }
      g0 = g1;
    }
  }
}

// --- Row GEMV (m == 1) ----------------------------------------------------------------------------

constexpr size_t kGroupBlock = 16;  // groups reduced together = zmm int32 lanes

// Sums of the 16 int32 lanes of each v[i], as lane i of the result (v is clobbered).
inline __m512i reduce16(__m512i v[16]) {
  __m512i x[8], y[4];
  // Per 128-bit lane L: x[i] = [a0+a2, b0+b2, a1+a3, b1+b3] of a = v[2i], b = v[2i + 1].
  for (int i = 0; i < 8; ++i)
    x[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                            _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  // Per 128-bit lane L: y[j] = the lane-L sums of v[4j .. 4j + 3].
  for (int j = 0; j < 4; ++j)
    y[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(x[2 * j], x[2 * j + 1]),
                            _mm512_unpackhi_epi64(x[2 * j], x[2 * j + 1]));
  // Sum the four 128-bit lanes of each y[j] into 128-bit lane j.
  const __m512i s01 = _mm512_add_epi32(_mm512_shuffle_i32x4(y[0], y[1], 0x44),
                                       _mm512_shuffle_i32x4(y[0], y[1], 0xEE));
  const __m512i s23 = _mm512_add_epi32(_mm512_shuffle_i32x4(y[2], y[3], 0x44),
                                       _mm512_shuffle_i32x4(y[2], y[3], 0xEE));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(s01, s23, 0x88),
                          _mm512_shuffle_i32x4(s01, s23, 0xDD));
}

// Bytes ahead of the weight being read that run_rows_gemv prefetches. The hardware prefetcher
// alone kept one thread's stream from DRAM at ~16 GB/s; 2-12 KiB ahead all gave the same gain
// (tinyllama decode, 2 threads: ~33 -> ~37 tok/s), 4 KiB is kept.
constexpr size_t kPrefetchAhead = 4096;

// The integer dot of one group of `len` bytes: whole 64- and 32-byte steps with plain loads, the
// rest masked. kLen != 0: len == kLen, known at compile time.
template <size_t kLen>
inline __m512i group_dot(const uint8_t* w, const int8_t* a, size_t len) {
  if (kLen != 0) len = kLen;
  __m512i acc = _mm512_setzero_si512();
  size_t t = 0;
  for (; t + 64 <= len; t += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(w + t + kPrefetchAhead), _MM_HINT_T0);
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(w + t), _mm512_loadu_si512(a + t));
  }
  if (len - t >= 32) {
    _mm_prefetch(reinterpret_cast<const char*>(w + t + kPrefetchAhead), _MM_HINT_T0);
    acc = _mm512_dpbusd_epi32(
        acc, _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t))),
        _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + t))));
    t += 32;
  }
  if (t < len) {
    const __mmask64 mask = (__mmask64{1} << (len - t)) - 1;
    acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi8(mask, w + t),
                              _mm512_maskz_loadu_epi8(mask, a + t));
  }
  return acc;
}

// Groups of 16 or 32 bytes: one zmm holds 64 / kGroup whole groups, so the 16 groups of a block
// take kGroup / 4 vpdpbusd (plain loads, masked only past the row's end: zeros there), and their
// sums need only in-lane adds (and, for 32, one 128-bit swap). Lane g of the result: group g's sum.
// `avail`: bytes of the row from w on.
template <size_t kGroup>
inline __m512i small_group_sums(const uint8_t* w, const int8_t* a, size_t avail) {
  static_assert(kGroup == 16 || kGroup == 32, "one zmm holds 4 or 2 whole groups");
  constexpr size_t kVecs = kGroup / 4;
  __m512i v[kVecs];
  for (size_t j = 0; j < kVecs; ++j) {
    const size_t t = 64 * j;
    if (t + 64 <= avail) {
      _mm_prefetch(reinterpret_cast<const char*>(w + t + kPrefetchAhead), _MM_HINT_T0);
      v[j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(w + t),
                                 _mm512_loadu_si512(a + t));
    } else if (t < avail) {
      const __mmask64 mask = (__mmask64{1} << (avail - t)) - 1;
      v[j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_maskz_loadu_epi8(mask, w + t),
                                 _mm512_maskz_loadu_epi8(mask, a + t));
    } else {
      v[j] = _mm512_setzero_si512();
    }
  }
  // Per 128-bit lane L: x[i] = [a0+a2, b0+b2, a1+a3, b1+b3] of a = v[2i], b = v[2i + 1], then
  // y[j] = the lane-L sums of v[4j .. 4j + 3] (as in reduce16).
  __m512i x[kVecs / 2], y[kVecs / 4];
  for (size_t i = 0; i < kVecs / 2; ++i)
    x[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                            _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (size_t j = 0; j < kVecs / 4; ++j)
    y[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(x[2 * j], x[2 * j + 1]),
                            _mm512_unpackhi_epi64(x[2 * j], x[2 * j + 1]));
  if (kGroup == 16) {
    // Lane 4L + c: 128-bit lane L of v[c] = group 4c + L.
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_epi32(idx, y[0]);
  }
  // kGroup == 32: v[m] holds group 2m in 128-bit lanes 0-1 and 2m + 1 in lanes 2-3. Sum the lane
  // pairs (lanes 0 / 2 of z[j]), then gather: lane 4B + c of r is group 2c + B (B < 2) or
  // 8 + 2c + (B - 2) (B >= 2).
  const __m512i z0 = _mm512_add_epi32(y[0], _mm512_shuffle_i32x4(y[0], y[0], 0xB1));
  const __m512i z1 = _mm512_add_epi32(y[kVecs / 4 - 1], _mm512_shuffle_i32x4(y[kVecs / 4 - 1], y[kVecs / 4 - 1], 0xB1));
  const __m512i r = _mm512_shuffle_i32x4(z0, z1, 0x88);
  const __m512i idx = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
  return _mm512_permutexvar_epi32(idx, r);
}

// The float terms (s * d) * isum + (m * d) * asum of groups [g0, g0 + 16) of one row (row q,
// params pr) into t[0 .. 16); groups past the row's end give zero terms (not used).
template <size_t kGroup>
inline void block_terms(const uint8_t* qr, const float* pr /* (group, {scale, min}) */,
                        const float* params_end, size_t k, size_t group, size_t groups,
                        size_t g0, const int8_t* a, const float* d, const int32_t* sum,
                        float* t /* (16) */) {
  const size_t full_groups = k / group;
  const size_t nb = groups - g0 < kGroupBlock ? groups - g0 : kGroupBlock;
  // The block's scales / mins (128 bytes) a weight prefetch distance ahead, in their units.
  const char* pf = reinterpret_cast<const char*>(pr + 2 * g0) + 8 * kPrefetchAhead / group;
  _mm_prefetch(pf, _MM_HINT_T0);
  _mm_prefetch(pf + 64, _MM_HINT_T0);
  __m512i isum;
  if constexpr (kGroup == 16 || kGroup == 32) {
    isum = small_group_sums<kGroup>(qr + g0 * kGroup, a + g0 * kGroup, k - g0 * kGroup);
  } else {
    __m512i acc[kGroupBlock];
    for (size_t i = 0; i < kGroupBlock; ++i) {
      const size_t g = g0 + i, k0 = g * group;
      if (g < full_groups)
        acc[i] = group_dot<kGroup>(qr + k0, a + k0, group);
      else if (g < groups)
        acc[i] = group_dot<0>(qr + k0, a + k0, k - k0);
      else
        acc[i] = _mm512_setzero_si512();
    }
    isum = reduce16(acc);
  }
  // Scales / mins: plain loads while they stay inside this call's rows.
  const float* pb = pr + 2 * g0;
  __m512 lo, hi;
  if (pb + 2 * kGroupBlock <= params_end) {
    lo = _mm512_loadu_ps(pb);
    hi = _mm512_loadu_ps(pb + 16);
  } else {
    const size_t nf = 2 * nb;
    lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(nf >= 16 ? 0xFFFF : (1u << nf) - 1), pb);
    hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>(nf <= 16 ? 0 : (1u << (nf - 16)) - 1),
                               pb + 16);
  }
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 vs = _mm512_permutex2var_ps(lo, even, hi);
  const __m512 vm = _mm512_permutex2var_ps(lo, odd, hi);
  const __mmask16 gmask = static_cast<__mmask16>((1u << nb) - 1);
  const __m512 vd = _mm512_maskz_loadu_ps(gmask, d + g0);
  const __m512 va = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(gmask, sum + g0));
  const __m512 sd = _mm512_mul_ps(vs, vd);
  const __m512 md = _mm512_mul_ps(vm, vd);
  _mm512_storeu_ps(t, _mm512_add_ps(_mm512_mul_ps(sd, _mm512_cvtepi32_ps(isum)),
                                    _mm512_mul_ps(md, va)));
}

// Groups per row up to which run_rows_gemv keeps a row's terms to sum them one row late.
constexpr size_t kMaxLateGroups = 512;

// One token, rows [n0, n1), one row at a time, for groups of 16, 32 or more bytes: a thread's weights
// (and their scales / mins) are read front to back as one stream, prefetched ahead (the 8-row
// dot tiles read 8 streams a row apart and reached about half the bandwidth from DRAM). The
// integer sums of 16 groups are reduced together and their float terms computed 16 at a time;
// a row's terms are then added one by one in group order (the kernels.h order) while the next
// row's dot products run, so that chain of dependent adds does not hold up the stream.
// kGroup != 0: group == kGroup (the inner loop then has a fixed trip count; 16 and 32 pack
// several groups in a vector, small_group_sums).
template <size_t kGroup>
void run_rows_gemv(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                   const int8_t* a, const float* d, const int32_t* sum, float* y, size_t n0,
                   size_t n1) {
  if (kGroup != 0) group = kGroup;
  const size_t groups = (k + group - 1) / group;
  const float* params_end = reinterpret_cast<const float*>(p + n1 * groups);
  const auto row_q = [&](size_t r) { return q + r * k; };
  const auto row_p = [&](size_t r) { return reinterpret_cast<const float*>(p + r * groups); };
  if (groups > kMaxLateGroups) {  // each row's terms summed at once
    for (size_t r = n0; r < n1; ++r) {
      float facc = 0.0f;
      for (size_t g0 = 0; g0 < groups; g0 += kGroupBlock) {
        alignas(64) float t[kGroupBlock];
        block_terms<kGroup>(row_q(r), row_p(r), params_end, k, group, groups, g0, a, d, sum, t);
        const size_t nb = groups - g0 < kGroupBlock ? groups - g0 : kGroupBlock;
        for (size_t i = 0; i < nb; ++i) facc = facc + t[i];
      }
      y[r] = facc;
    }
    return;
  }
  alignas(64) float terms[2][kMaxLateGroups + kGroupBlock];
  float* cur = terms[0];   // (groups) row r's terms
  float* prev = terms[1];  // (groups) row r - 1's terms
  for (size_t r = n0; r <= n1; ++r) {
    float facc = 0.0f;  // row r - 1's sum
    for (size_t g0 = 0; g0 < groups; g0 += kGroupBlock) {
      if (r < n1)
        block_terms<kGroup>(row_q(r), row_p(r), params_end, k, group, groups, g0, a, d, sum,
                            cur + g0);
      if (r > n0) {
        const size_t nb = groups - g0 < kGroupBlock ? groups - g0 : kGroupBlock;
        for (size_t i = 0; i < nb; ++i) facc = facc + prev[g0 + i];
      }
    }
    if (r > n0) y[r - 1] = facc;
    float* swap = cur;
    cur = prev;
    prev = swap;
  }
}

}  // namespace

void u8s8_matmul_avx512vnni(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                            const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                            size_t ldy, size_t n0, size_t n1) {
  if (n1 <= n0 || m == 0) return;
  if (m >= 4 && panel_groups_end(k, group, (k + group - 1) / group, 0) > 0) {
    run_panels(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  } else if (m == 1 && group == 16) {
    run_rows_gemv<16>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1 && group == 32) {
    run_rows_gemv<32>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1 && group == 64) {
    run_rows_gemv<64>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1 && group == 128) {
    run_rows_gemv<128>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1 && group >= 32) {
    run_rows_gemv<0>(q, p, k, group, a, d, sum, y, n0, n1);
  } else if (m == 1) {
    run_tiles<1, 8, VnniDotTile<1, 8>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  } else if (m <= 3) {
    run_tiles<2, 4, VnniDotTile<2, 4>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  } else {
    run_tiles<4, 2, VnniDotTile<4, 2>>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
  }
}

}  // namespace kernels
}  // namespace ember
