// Zero-one u8 x s8 matmul, AVX-512 VNNI (with AVX512BW/VL).
//
// vpdpbusd multiplies u8 by s8 and adds each four products into an int32 lane without saturation:
// exactly the zero-one weight (u8) x quantized activation (s8) product, no sign trick, no widening.
// The integer part of every group is exact, and the float epilogue is the kernels.h order, so the
// results are bit-identical to every other variant.
//
// Two tilings:
// - Dot tiles (m <= 3, and any shape whose group does not fit the panel): the avx2 tiles of MR
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

}  // namespace

void u8s8_matmul_avx512vnni(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                            const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                            size_t ldy, size_t n0, size_t n1) {
  if (n1 <= n0 || m == 0) return;
  if (m >= 4 && panel_groups_end(k, group, (k + group - 1) / group, 0) > 0) {
    run_panels(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
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
