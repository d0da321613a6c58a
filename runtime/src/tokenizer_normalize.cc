// Tokenizer, normalization: NFC (Qwen2's normalizer) from the file's nfc_ccc / nfc_decomp /
// nfc_compose tables, which the converter computes from utf8proc and plan() checks.
#include "ember_generated.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"

namespace ember {

using tok::kNfcUnchanged;
using tok::utf8_char;

uint32_t Tokenizer::nfc_ccc(uint32_t cp) const {
  if (cp < 0x300 || cp > 0x10FFFF) return 0;
  const auto* v = t_->nfc_ccc();
  uint32_t lo = 0, hi = v->size();
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    const uint32_t c = v->Get(mid) >> 8;
    if (c == cp) return v->Get(mid) & 0xFF;
    if (c < cp) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return 0;
}

// Composite of (a, b), or 0: Hangul L+V, LV+T algorithmically, else the table.
uint32_t Tokenizer::nfc_compose(uint32_t a, uint32_t b) const {
  constexpr uint32_t kS = 0xAC00, kL = 0x1100, kV = 0x1161, kT = 0x11A7;
  if (a >= kL && a < kL + 19 && b >= kV && b < kV + 21) return kS + ((a - kL) * 21 + (b - kV)) * 28;
  if (a >= kS && a < kS + 11172 && (a - kS) % 28 == 0 && b > kT && b < kT + 28) return a + (b - kT);
  const auto* v = t_->nfc_compose();
  uint32_t lo = 0, hi = v->size() / 3;
  const uint64_t key = uint64_t{a} << 32 | b;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    const uint64_t k = uint64_t{v->Get(3 * mid)} << 32 | v->Get(3 * mid + 1);
    if (k == key) return v->Get(3 * mid + 2);
    if (k < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return 0;
}

// NFC of s[0..n) into out (UTF-8, at most 3n bytes); returns its length, or kNfcUnchanged when
// the text has nothing NFC can change (every code point below U+0300: the common case, no copy).
// Bytes that are not UTF-8 pass through unchanged and block nothing but composition across them.
size_t Tokenizer::nfc(const uint8_t* s, size_t n, uint32_t* cps, size_t cap, uint8_t* out) const {
  size_t i = 0;
  while (i < n && s[i] < 0xCC) ++i;  // 0xCC lead byte = U+0300
  if (i == n) return kNfcUnchanged;
  constexpr uint32_t kRaw = 0x80000000u;  // cps entry for a byte that is not UTF-8
  constexpr uint32_t kS = 0xAC00, kL = 0x1100, kV = 0x1161, kT = 0x11A7;
  const auto* dec = t_->nfc_decomp();
  size_t m = 0;
  auto push = [&](uint32_t c) {
    if (m < cap) cps[m++] = c;
  };
  // 1. Canonical decomposition.
  for (i = 0; i < n;) {
    uint32_t cp;
    const size_t l = utf8_char(s, n, i, &cp);
    if (cp == 0xFFFFFFFFu) {
      push(kRaw | s[i]);
    } else if (cp >= kS && cp < kS + 11172) {
      const uint32_t si = cp - kS;
      push(kL + si / 588);
      push(kV + (si % 588) / 28);
      if (si % 28) push(kT + si % 28);
    } else {
      uint32_t lo = 0, hi = cp >= 0xC0 ? dec->size() / 5 : 0;
      bool found = false;
      while (lo < hi) {
        const uint32_t mid = (lo + hi) / 2;
        const uint32_t c = dec->Get(5 * mid) >> 3;
        if (c == cp) {
          const uint32_t k = dec->Get(5 * mid) & 7;
          for (uint32_t j = 0; j < k; ++j) push(dec->Get(5 * mid + 1 + j));
          found = true;
          break;
        }
        if (c < cp) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      if (!found) push(cp);
    }
    i += l;
  }
  auto ccc = [&](uint32_t c) { return (c & kRaw) ? 0u : nfc_ccc(c); };
  // 2. Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t k = 1; k < m; ++k) {
    const uint32_t c = cps[k];
    const uint32_t cc = ccc(c);
    if (cc == 0) continue;
    size_t j = k;
    while (j > 0 && ccc(cps[j - 1]) > cc) {
      cps[j] = cps[j - 1];
      --j;
    }
    cps[j] = c;
  }
  // 3. Canonical composition (UAX #15).
  size_t w = 0;
  if (m) {
    size_t starter = 0;
    uint32_t last_class = ccc(cps[0]);
    if (last_class != 0) last_class = 256;  // no starter yet: nothing composes
    w = 1;
    for (size_t k = 1; k < m; ++k) {
      const uint32_t c = cps[k];
      const uint32_t cc = ccc(c);
      const uint32_t comp = (last_class != 256 && !(cps[starter] & kRaw) && !(c & kRaw))
                                ? nfc_compose(cps[starter], c)
                                : 0;
      if (comp && (last_class < cc || last_class == 0)) {
        cps[starter] = comp;
        continue;
      }
      if (cc == 0) {
        starter = w;
        last_class = 0;
      } else {
        last_class = cc;
      }
      cps[w++] = c;
    }
  }
  // 4. UTF-8.
  size_t o = 0;
  for (size_t k = 0; k < w; ++k) {
    const uint32_t c = cps[k];
    if (c & kRaw) {
      out[o++] = static_cast<uint8_t>(c);
    } else if (c < 0x80) {
      out[o++] = static_cast<uint8_t>(c);
    } else if (c < 0x800) {
      out[o++] = static_cast<uint8_t>(0xC0 | c >> 6);
      out[o++] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out[o++] = static_cast<uint8_t>(0xE0 | c >> 12);
      out[o++] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
      out[o++] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    } else {
      out[o++] = static_cast<uint8_t>(0xF0 | c >> 18);
      out[o++] = static_cast<uint8_t>(0x80 | ((c >> 12) & 0x3F));
      out[o++] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
      out[o++] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    }
  }
  return o;
}

}  // namespace ember
