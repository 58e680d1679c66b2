// bfloat16 storage in the vector layer: loads that widen bfloat16 into float lanes and stores that
// round float lanes to bfloat16, overloads of vector-inl.h's load / store family for
// `const bfloat16*`, so that a kernel written against a storage type S reads bfloat16 and float
// alike (Vec<bfloat16>::V is f32v). Per-target instructions are chosen here, as in vector-inl.h.
//
// Included once per ISA target after simd/vector-inl.h (arch/target.inc).
#pragma once

// A vector of bfloat16 is half a register of 16-bit words. Loads widen each word to 32 bits and
// shift it into the upper half: exactly the float it stands for (vpmovzxwd + vpslld). Stores
// round each float lane once to nearest even, in integer arithmetic that every target has
// (adding 0x7fff plus the lowest kept bit carries into the kept half exactly when the discarded
// half is above one half, or one half with an odd kept half; past the largest finite value the
// carry reaches the exponent's all-ones, +-inf); nan lanes keep their sign and become quiet nan.
// Overloads of load/store for `const bfloat16*`: a non-template function wins over the templates.
typedef uint16_t u16h __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES / 2)));

LOGITLOSS_ALWAYS_INLINE f32v widen_bfloat16(u16h words) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  // One vpmovzxwd across the register (GCC's generic conversion splits it in two halves).
  return (f32v)_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)words), 16);
#elif defined(__AVX2__) && LOGITLOSS_VECTOR_BYTES == 32
  return (f32v)_mm256_slli_epi32(_mm256_cvtepu16_epi32((__m128i)words), 16);
#elif defined(__SSE2__) && LOGITLOSS_VECTOR_BYTES == 16
  // Interleaved below zero words: each word lands in the upper half of its lane, shifted for free.
  __m128i low = _mm_setzero_si128();
  std::memcpy(&low, &words, sizeof words);
  return (f32v)_mm_unpacklo_epi16(_mm_setzero_si128(), low);
#else
  return (f32v)(__builtin_convertvector(words, u32v) << 16);
#endif
}

LOGITLOSS_ALWAYS_INLINE u16h round_to_bfloat16(f32v v) {
  const u32v bits = (u32v)v;
  const u32v rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
  const u32v is_nan = (u32v)(v != v);
  // The result in the upper half of each lane: the quiet nan's bits, or the rounded value's.
  const u32v upper = ((bits | 0x00400000u) & is_nan) | (rounded & ~is_nan);
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  return (u16h)_mm512_cvtepi32_epi16(_mm512_srli_epi32((__m512i)upper, 16));
#elif defined(__AVX2__) && LOGITLOSS_VECTOR_BYTES == 32
  const __m256i words = _mm256_srai_epi32((__m256i)upper, 16);  // sign-extended: the pack keeps them exactly
  return (u16h)_mm_packs_epi32(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
#elif defined(__SSE2__) && LOGITLOSS_VECTOR_BYTES == 16
  const __m128i words = _mm_srai_epi32((__m128i)upper, 16);
  const __m128i packed = _mm_packs_epi32(words, words);
  u16h result;
  std::memcpy(&result, &packed, sizeof result);
  return result;
#else
  return __builtin_convertvector(upper >> 16, u16h);
#endif
}

inline f32v load(const bfloat16* p) {
  u16h words;
  std::memcpy(&words, p, sizeof words);
  return widen_bfloat16(words);
}

inline void store(bfloat16* p, f32v v) {
  const u16h words = round_to_bfloat16(v);
  std::memcpy(p, &words, sizeof words);
}

// The first n (0 < n < lanes) elements; other lanes `fill` (set after widening: any float).
inline f32v load_partial(const bfloat16* p, int64_t n, float fill) {
#if defined(__AVX512BW__) && defined(__AVX512VL__) && LOGITLOSS_VECTOR_BYTES == 64
  const f32v x = widen_bfloat16((u16h)_mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1), p));
#else
  uint16_t buffer[Vec<bfloat16>::kLanes] = {};
  std::memcpy(buffer, p, (size_t)n * sizeof(uint16_t));
  u16h words;
  std::memcpy(&words, buffer, sizeof words);
  const f32v x = widen_bfloat16(words);
#endif
  return lane_index<f32v>() < (int32_t)n ? x : splat<f32v>(fill);
}

inline void store_partial(bfloat16* p, f32v v, int64_t n) {
  const u16h words = round_to_bfloat16(v);
#if defined(__AVX512BW__) && defined(__AVX512VL__) && LOGITLOSS_VECTOR_BYTES == 64
  _mm256_mask_storeu_epi16(p, (__mmask16)((1u << n) - 1), (__m256i)words);
#else
  std::memcpy(p, &words, (size_t)n * sizeof(uint16_t));
#endif
}

inline f32v load_n(const bfloat16* p, int64_t count, float fill) {
  return count == Vec<bfloat16>::kLanes ? load(p) : load_partial(p, count, fill);
}

// The 2 * lanes elements at p as two vectors, in an order of this function's choosing: for sums
// and maxima, where the order of the elements does not matter. float and double: as stored.
// bfloat16: one full-register load whose 32-bit lanes each hold two elements; the low one shifted
// up and the high one masked are both exact floats, with no cross-lane widening (vpmovzxwd, a
// shuffle, competes with the exp's table permutes for one port).
template <class T>
LOGITLOSS_ALWAYS_INLINE void load_pair_any_order(const T* p, typename Vec<T>::V& first, typename Vec<T>::V& second) {
  first = load(p);
  second = load(p + Vec<T>::kLanes);
}

LOGITLOSS_ALWAYS_INLINE void load_pair_any_order(const bfloat16* p, f32v& first, f32v& second) {
  u32v words;
  std::memcpy(&words, p, sizeof words);
  first = (f32v)(words << 16);
  second = (f32v)(words & 0xffff0000u);
}

// Streamed whole vector of bfloat16 at p, aligned to its size (half a register): as
// store_streaming. Baseline's 8-byte vectors are stored plainly.
inline void store_streaming(bfloat16* p, f32v v) {
  const u16h words = round_to_bfloat16(v);
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  _mm256_stream_si256(reinterpret_cast<__m256i*>(p), (__m256i)words);
#elif defined(__AVX__) && LOGITLOSS_VECTOR_BYTES == 32
  _mm_stream_si128(reinterpret_cast<__m128i*>(p), (__m128i)words);
#else
  std::memcpy(p, &words, sizeof words);
#endif
}
