// Float matmuls (f32 / f16 / bf16 weights), AVX-512, in the sequential order of kernels.h: each
// output is one accumulator, acc = acc + w[t] * x[t] for t = 0..k-1, multiply then add (no FMA),
// so the results equal the scalar kernel's bit for bit. The SIMD runs ACROSS OUTPUT ROWS: one
// __m512 holds the accumulators of 16 rows. 16 values of each of the block's 16 rows are widened
// to f32 and the 16 x 16 block is transposed in registers (4 rounds of 16 shuffles) into 16
// columns, each times broadcast x[t] added in increasing t.
// Memory: a step reads one whole 64-byte line of each row (16 f32, or 32 f16 / bf16 values whose
// second half waits in an L1 buffer for the next sub-step), so no weight line is loaded twice. Rows
// whose stride is a multiple of 4 KiB (k = 2048 ...) all fall in one L1 set: a line left for a
// later step would be evicted first, and the 16-bit kernels then read at about half the bandwidth.
// Chains: the accumulator chain (one add per column) bounds a lone block, so a one-token call runs
// two blocks (32 rows) side by side; with 2 or more tokens their chains run side by side on one
// block. A partial last block repeats its last row (computed, not stored); a partial last step
// loads only the values left (masked) and adds only those columns.
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "runtime/kernels/avx512vnni/ files must be compiled with -mavx512f -mavx512bw -mavx512vl"
#endif

#include <immintrin.h>

#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// Sixteen values of one row widened to f32 (`mask`: the first values only, the rest zero).
struct LoadF32 {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m512 widen(__m256i h) { return _mm512_cvtph_ps(h); }
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load(const uint16_t* p, __mmask16 mask) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
  }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const uint16_t* p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load(const uint16_t* p, __mmask16 mask) {
    return widen(_mm256_maskz_loadu_epi16(mask, p));
  }
};

// In place: r[i] = (row i, values t..t+15) -> r[j] = (column t+j of rows 0..15).
inline void transpose16(__m512 r[16]) {
  __m512 s[16];
  for (int i = 0; i < 8; ++i) {  // pairs of rows interleaved
    s[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    s[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // 4 rows: r[4g + c] holds column 4L + c of rows 4g..4g+3, lane L
    const __m512d a = _mm512_castps_pd(s[4 * g]), b = _mm512_castps_pd(s[4 * g + 2]);
    const __m512d c = _mm512_castps_pd(s[4 * g + 1]), d = _mm512_castps_pd(s[4 * g + 3]);
    r[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int c = 0; c < 4; ++c) {  // lanes gathered: groups (0, 1) and (2, 3) of rows
    s[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    s[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
    s[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    s[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
  }
  for (int c = 0; c < 4; ++c) {  // all four groups: the columns c, 4 + c, 8 + c, 12 + c
    r[c] = _mm512_shuffle_f32x4(s[c], s[8 + c], 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(s[c], s[8 + c], 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(s[4 + c], s[12 + c], 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(s[4 + c], s[12 + c], 0xDD);
  }
}

// The 16 rows from `p` (row stride `k` values), values [t, t + n) as columns (n <= 16; n < 16 reads
// only those values).
template <class L>
inline void load_columns(const typename L::T* p, size_t k, size_t n, __m512 c[16]) {
  if (n == 16) {
    for (int i = 0; i < 16; ++i) {
      c[i] = L::load(p);
      p += k;
      __asm__("" : "+r"(p));  // one pointer stepped: not 16 row pointers kept (and spilled)
    }
  } else {
    const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1);
    for (int i = 0; i < 16; ++i) {
      c[i] = L::load(p, mask);
      p += k;
      __asm__("" : "+r"(p));
    }
  }
  transpose16(c);
}

// acc += columns [0, n) times x[0..n), in increasing t. Each block of two_blocks has its own
// pointer to x, so that each broadcast stays a memory operand of its multiply.
inline void add_columns(const __m512 c[16], size_t n, const float* x, __m512& acc) {
  for (size_t u = 0; u < n; ++u)
    acc = _mm512_add_ps(acc, _mm512_mul_ps(c[u], _mm512_set1_ps(x[u])));
}

// As load_columns for a block of `rows` < 16 rows (or any block at a partial last step): the rows
// past the end repeat the last one (computed, not stored).
template <class L>
inline void load_columns_partial(const typename L::T* p, size_t k, size_t rows, size_t n,
                                 __m512 c[16]) {
  const __mmask16 mask = static_cast<__mmask16>(n == 16 ? 0xFFFFu : (1u << n) - 1);
  for (size_t i = 0; i < 16; ++i) c[i] = L::load(p + (i < rows ? i : rows - 1) * k, mask);
  transpose16(c);
}

inline void store_rows(float* y, __m512 acc, size_t rows) {
  if (rows == 16) {
    _mm512_storeu_ps(y, acc);
  } else {
    _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << rows) - 1), acc);
  }
}

// Values per step: one 64-byte line of a row.
template <class T>
constexpr size_t kStep = 64 / sizeof(T);

// 16-bit weights: the 16 lines of rows p, p + k, ... (32 values each) read once; their first 16
// values as columns in c, the other 16 parked in `upper` (16 x 16 values) for the next sub-step,
// rather than read again from lines that may be evicted in between.
template <class L>
inline void load_columns_line(const typename L::T* p, size_t k, __m512 c[16],
                              typename L::T* upper) {
  for (int i = 0; i < 16; ++i) {
    const __m512i line = _mm512_loadu_si512(p);
    c[i] = L::widen(_mm512_castsi512_si256(line));
    _mm256_store_si256(reinterpret_cast<__m256i*>(upper + 16 * i),
                       _mm512_extracti64x4_epi64(line, 1));
    p += k;
    __asm__("" : "+r"(p));
  }
  transpose16(c);
}

// One token, rows [j, j + 32) both whole: two blocks, two accumulator chains.
template <class L>
void two_blocks(const typename L::T* w, size_t k, const float* x, float* y, size_t j) {
  using T = typename L::T;
  constexpr size_t S = kStep<T>;
  const T* p0 = w + j * k;
  const T* p1 = p0 + 16 * k;
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  alignas(64) T s0[16 * 16], s1[16 * 16];  // 16-bit: the lines' second halves
  __m512 c[16];
  size_t t = 0;
  for (; t + S <= k; t += S) {
    const float* x0 = x + t;
    const float* x1 = x0;
    __asm__("" : "+r"(x1));  // a second pointer: the broadcasts stay memory operands
    if constexpr (S == 16) {
      load_columns<L>(p0 + t, k, 16, c);
      add_columns(c, 16, x0, a0);
      load_columns<L>(p1 + t, k, 16, c);
      add_columns(c, 16, x1, a1);
    } else {
      load_columns_line<L>(p0 + t, k, c, s0);
      add_columns(c, 16, x0, a0);
      load_columns_line<L>(p1 + t, k, c, s1);
      add_columns(c, 16, x1, a1);
      load_columns<L>(s0, 16, 16, c);
      add_columns(c, 16, x0 + 16, a0);
      load_columns<L>(s1, 16, 16, c);
      add_columns(c, 16, x1 + 16, a1);
    }
  }
  for (; t < k; t += 16) {  // the last values, 16 at a time (masked)
    const size_t n = k - t < 16 ? k - t : 16;
    load_columns<L>(p0 + t, k, n, c);
    add_columns(c, n, x + t, a0);
    load_columns<L>(p1 + t, k, n, c);
    add_columns(c, n, x + t, a1);
  }
  _mm512_storeu_ps(y + j, a0);
  _mm512_storeu_ps(y + j + 16, a1);
}

// acc[i] += columns [0, n) times token i's x[0..n) (row stride k), i < MR, in increasing t.
template <int MR>
inline void add_columns_tokens(const __m512 c[16], size_t n, const float* x, size_t k,
                               __m512 acc[MR]) {
  for (size_t u = 0; u < n; ++u)
    for (int i = 0; i < MR; ++i)
      acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(c[u], _mm512_set1_ps(x[i * k + u])));
}

// MR tokens (x rows i0.., y rows i0..), the block of rows [j, j + rows) (rows <= 16).
template <class L, int MR>
void one_block(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy, size_t i0,
               size_t j, size_t rows) {
  using T = typename L::T;
  constexpr size_t S = kStep<T>;
  const T* p = w + j * k;
  const float* xi = x + i0 * k;
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  alignas(64) T stage[16 * 16];  // 16-bit: the lines' second halves
  __m512 c[16];
  size_t t = 0;
  if (rows == 16) {
    for (; t + S <= k; t += S) {
      if constexpr (S == 16) {
        load_columns<L>(p + t, k, 16, c);
        add_columns_tokens<MR>(c, 16, xi + t, k, acc);
      } else {
        load_columns_line<L>(p + t, k, c, stage);
        add_columns_tokens<MR>(c, 16, xi + t, k, acc);
        load_columns<L>(stage, 16, 16, c);
        add_columns_tokens<MR>(c, 16, xi + t + 16, k, acc);
      }
    }
  }
  for (; t < k; t += 16) {  // a partial block, or the last values (masked)
    const size_t n = k - t < 16 ? k - t : 16;
    load_columns_partial<L>(p + t, k, rows, n, c);
    add_columns_tokens<MR>(c, n, xi + t, k, acc);
  }
  for (int i = 0; i < MR; ++i) store_rows(y + (i0 + i) * ldy + j, acc[i], rows);
}

template <class L, int MR>
void token_tile(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy, size_t i0,
                size_t n0, size_t n1) {
  size_t j = n0;
  if (MR == 1) {
    for (; j + 32 <= n1; j += 32) two_blocks<L>(w, k, x + i0 * k, y + i0 * ldy, j);
  }
  for (; j < n1; j += 16) one_block<L, MR>(w, k, x, y, ldy, i0, j, n1 - j < 16 ? n1 - j : 16);
}

template <class L>
void matmul(const typename L::T* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
            size_t n0, size_t n1) {
  if (n0 >= n1) return;
  size_t i = 0;
  for (; i + 4 <= m; i += 4) token_tile<L, 4>(w, k, x, y, ldy, i, n0, n1);
  for (; i + 2 <= m; i += 2) token_tile<L, 2>(w, k, x, y, ldy, i, n0, n1);
  for (; i < m; ++i) token_tile<L, 1>(w, k, x, y, ldy, i, n0, n1);
}

// Row-blocked weights (core/float_blocks.h): one __m512 holds a block's 16 accumulators; per t one
// load of the block's 16 values (64 bytes of f32, 32 of f16) and one multiply and add per token.
// NB blocks x MR tokens per tile.
template <class L, int NB, int MR>
inline void blocked_tile(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy,
                         size_t i0, size_t b0, size_t n0, size_t n1) {
  const typename L::T* p[NB];
  for (int b = 0; b < NB; ++b) p[b] = w + (b0 + b) * k * 16;
  __m512 acc[MR][NB];
  for (int i = 0; i < MR; ++i)
    for (int b = 0; b < NB; ++b) acc[i][b] = _mm512_setzero_ps();
  const float* xi = x + i0 * k;
  for (size_t t = 0; t < k; ++t) {
    __m512 wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = L::load(p[b] + t * 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_set1_ps(xi[i * k + t]);
      for (int b = 0; b < NB; ++b) acc[i][b] = _mm512_add_ps(acc[i][b], _mm512_mul_ps(wv[b], xv));
    }
  }
  for (int b = 0; b < NB; ++b) {
    const size_t j = (b0 + b) * 16;
    const unsigned lo = n0 > j ? static_cast<unsigned>(n0 - j) : 0u;
    const unsigned hi = n1 - j < 16 ? static_cast<unsigned>(n1 - j) : 16u;
    const __mmask16 mask = static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
    for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(y + (i0 + i) * ldy + j, mask, acc[i][b]);
  }
}

// Every token of x over blocks [b, b + NB): the tile's weights stay in cache across token tiles.
template <class L, int NB>
inline void blocked_tokens(const typename L::T* w, size_t k, const float* x, size_t m, float* y,
                           size_t ldy, size_t b, size_t n0, size_t n1) {
  size_t i = 0;
  for (; i + 4 <= m; i += 4) blocked_tile<L, NB, 4>(w, k, x, y, ldy, i, b, n0, n1);
  for (; i + 2 <= m; i += 2) blocked_tile<L, NB, 2>(w, k, x, y, ldy, i, b, n0, n1);
  for (; i < m; ++i) blocked_tile<L, NB, 1>(w, k, x, y, ldy, i, b, n0, n1);
}

template <class L>
void matmul_blocked(const typename L::T* w, size_t k, const float* x, size_t m, float* y,
                    size_t ldy, size_t n0, size_t n1) {
  if (n0 >= n1) return;
  const size_t b1 = (n1 + 15) / 16;
  size_t b = n0 / 16;
  if (m == 1) {  // one token: four blocks side by side, four accumulator chains
    for (; b + 4 <= b1; b += 4) blocked_tile<L, 4, 1>(w, k, x, y, ldy, 0, b, n0, n1);
  } else {
    for (; b + 2 <= b1; b += 2) blocked_tokens<L, 2>(w, k, x, m, y, ldy, b, n0, n1);
  }
  for (; b < b1; ++b) blocked_tokens<L, 1>(w, k, x, m, y, ldy, b, n0, n1);
}

}  // namespace

void f32_matmul_avx512vnni(const float* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                           size_t n0, size_t n1) {
  matmul<LoadF32>(w, k, x, m, y, ldy, n0, n1);
}
void f16_matmul_avx512vnni(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                           size_t ldy, size_t n0, size_t n1) {
  matmul<LoadF16>(w, k, x, m, y, ldy, n0, n1);
}
void bf16_matmul_avx512vnni(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                            size_t ldy, size_t n0, size_t n1) {
  matmul<LoadBF16>(w, k, x, m, y, ldy, n0, n1);
}

void f32_matmul_blocked_avx512vnni(const float* w, size_t k, const float* x, size_t m, float* y,
                                   size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadF32>(w, k, x, m, y, ldy, n0, n1);
}
void f16_matmul_blocked_avx512vnni(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                                   size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadF16>(w, k, x, m, y, ldy, n0, n1);
}
void bf16_matmul_blocked_avx512vnni(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                                    size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadBF16>(w, k, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
