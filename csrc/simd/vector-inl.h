// Thin vector layer: the only vocabulary kernels use to touch SIMD registers.
//
// Included once per ISA target, inside that target's anonymous namespace (see csrc/arch/),
// after the target file has defined LOGITLOSS_VECTOR_BYTES (16, 32 or 64). Vectors are GCC/Clang
// vector extensions, so ordinary arithmetic (+ - * /, comparisons, ?:) is elementwise and the
// compiler emits the target's instructions. The few operations the language cannot express
// portably (fused multiply-add, masked loads) pick an intrinsic when the target has one and fall
// back to plain, correctly rounded code otherwise.
//
// Never place a vector constant at namespace scope: it would be initialized by baseline code
// at load time. Constants are built inside functions.
//
// Requires (included by the target file before this one): <cstdint>, <cstring>, and the
// target's intrinsics header.

#ifndef LOGITLOSS_VECTOR_BYTES
#error "define LOGITLOSS_VECTOR_BYTES before including vector-inl.h"
#endif

// For the few helpers whose call would cost more than their body (vectors passed in memory).
#define LOGITLOSS_ALWAYS_INLINE inline __attribute__((always_inline))
// For hot loops that call lambdas: everything they call is inlined into them. GCC's inlining
// heuristics otherwise outline a loop's lambda now and then after unrelated changes elsewhere in
// the file (seen: chunk_sum's exp lambda called out of line, the softmax family 14% slower).
#define LOGITLOSS_FLATTEN inline __attribute__((flatten))

// ---- What differs between targets: the one place to read it ----------------------------------
// The kernels (csrc/kernels/) are the same C++ on every target; where a target changes what they
// do, they test one of the capability flags below, never the compiler's macros. The targets
// (csrc/arch/target_*.cpp: vector size, intrinsics header; CMakeLists.txt: compiler flags):
//   baseline  16-byte vectors (SSE2 on x86-64, Advanced SIMD on aarch64) and no FMA: mul_add is
//             a * b + c, two roundings. Tails through a stack buffer; streaming stores on x86-64
//             only (plain stores on aarch64). Everything else is the generic code below.
//   avx2      32-byte vectors, FMA, non-temporal stores; max_or_second / min_or_second are maxps / minps;
//             count_equal_accumulate_others and all_finite read the comparison mask (movemask).
//   avx512    64-byte vectors, FMA, non-temporal stores; masked loads and stores for tails; mask
//             registers for accumulate_split, count_equal_accumulate_others, any_lane and
//             all_finite; float lanes widened to double in registers. Beyond this file:
//               kHasScalef    scale_by_power_of_two is vscalef (subnormal results at full
//                             speed), so kernels/scale_factor-inl.h always applies a factor as
//                             mantissa and power of two;
//               kHasLookup16  float exp_nonpositive(_sum_term) by a 16-entry table of 2^(j/16)
//                             (simd/math-inl.h), and float log1p_unit_interval by a 32-point
//                             table (math-inl.h, its own #if);
//               kHasGather16  rows_stats takes 16 short float rows at a time, one per lane
//                             (kernels/small_rows-inl.h).
//   neon      16-byte vectors with FMA (vfmaq); otherwise as baseline.
// bfloat16 storage (simd/bfloat16-inl.h) widens and rounds with each x86 target's own
// instructions (vpmovzxwd / vpmovdw, an SSE2 interleave and pack), generic code elsewhere; the
// results are bitwise the same.
// Results are bitwise the same across targets except where rounding differs: mul_add (one
// rounding or two), the float exp and log1p tables (same error bound, other roundings) and the
// vector width (the order of lane sums). Each target is tested against the exact references on
// its own (the tests' `isa` fixture).
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
constexpr bool kHasLookup16 = true;   // lookup16: a 16-entry table in one register (vpermd)
constexpr bool kHasGather16 = true;   // gather16: 16 floats from 16 addresses (vgatherdps)
constexpr bool kHasScalef = true;     // scale_by_power_of_two is one instruction, subnormals at full speed
#else
constexpr bool kHasLookup16 = false;
constexpr bool kHasGather16 = false;
constexpr bool kHasScalef = false;
#endif

typedef float f32v __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES)));
typedef double f64v __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES)));
typedef int32_t i32v __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES)));
typedef int64_t i64v __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES)));
typedef uint32_t u32v __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES)));
typedef uint64_t u64v __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES)));
// Doubles with as many lanes as an f32v: float statistics are widened into these.
typedef double f64w __attribute__((vector_size(2 * LOGITLOSS_VECTOR_BYTES)));
typedef int64_t i64w __attribute__((vector_size(2 * LOGITLOSS_VECTOR_BYTES)));
typedef uint64_t u64w __attribute__((vector_size(2 * LOGITLOSS_VECTOR_BYTES)));

// Per element type: its vector, and the vector of doubles with the same lane count (statistics
// of float data are widened into it so long sums keep double precision).
template <class T>
struct Vec;

template <>
struct Vec<float> {
  using V = f32v;
  using Wide = f64w;
  static constexpr int kLanes = LOGITLOSS_VECTOR_BYTES / 4;
};

// bfloat16 storage: float lanes (Vec<bfloat16>::V is f32v); load and store below convert in
// registers, so a kernel written against `const S*` reads bfloat16 and float alike.
template <>
struct Vec<bfloat16> {
  using V = f32v;
  using Wide = f64w;
  static constexpr int kLanes = LOGITLOSS_VECTOR_BYTES / 4;
};

template <>
struct Vec<double> {
  using V = f64v;
  using Wide = f64v;
  static constexpr int kLanes = LOGITLOSS_VECTOR_BYTES / 8;
};

// Per vector type: the integer vector of the same shape (comparison masks, bit tricks) and the
// IEEE layout constants the math needs.
template <class V>
struct Lanes;

template <>
struct Lanes<f32v> {
  // Bit arithmetic (exponent-field adds, offsets, left shifts) is done in UInt: a nan or infinite
  // lane may carry any bits, and adding to them in a signed type could overflow, which is
  // undefined behaviour (UBSan reports it; an optimiser may assume it away). Int is for
  // conversions to and from the float lanes and arithmetic right shifts only.
  using Int = i32v;
  using UInt = u32v;
  using Bits = int32_t;
  using UBits = uint32_t;
  static constexpr int kMantissaBits = 23;
  static constexpr int kExponentBias = 127;
};

template <>
struct Lanes<f64v> {
  using Int = i64v;
  using UInt = u64v;
  using Bits = int64_t;
  using UBits = uint64_t;
  static constexpr int kMantissaBits = 52;
  static constexpr int kExponentBias = 1023;
};

template <>
struct Lanes<f64w> {
  using Int = i64w;
  using UInt = u64w;
  using Bits = int64_t;
  using UBits = uint64_t;
  static constexpr int kMantissaBits = 52;
  static constexpr int kExponentBias = 1023;
};

// Element type of a vector type.
template <class V>
using lane_t = typename std::remove_reference<decltype(V{}[0])>::type;

// s in every lane. s - 0 (not 0 + s, which turns -0.0 into +0.0) is s exactly for every s.
template <class V>
inline V splat(lane_t<V> s) {
  return s - V{};
}

template <class T>
inline typename Vec<T>::V load(const T* p) {
  typename Vec<T>::V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class T>
inline void store(T* p, typename Vec<T>::V v) {
  std::memcpy(p, &v, sizeof v);
}

// Lane i of the result is table[index[i] mod 16], for 16-lane vectors of 32-bit words: one
// permute (vpermd) where the target has it. kHasLookup16 says whether it does; without it the
// math takes another route (a lookup built from scalar loads would cost more than it saves).
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
inline u32v lookup16(u32v table, u32v index) {
  return (u32v)_mm512_permutexvar_epi32((__m512i)index, (__m512i)table);
}
#endif

// Lane i of the result is base[index[i]], for float vectors of 16 lanes (vgatherdps) where the
// target has it (kHasGather16).
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
inline f32v gather16(const float* base, i32v index) {
  return (f32v)_mm512_i32gather_ps((__m512i)index, base, sizeof(float));
}
#endif

// Lane indices 0, 1, 2, ... as the integer vector matching V (from a compile-time table).
template <class V>
inline auto lane_index() {
  using Int = typename Lanes<V>::Int;
  using Bits = typename Lanes<V>::Bits;
  static constexpr Bits kIndex[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  static_assert(sizeof(Int) / sizeof(Bits) <= 16, "lane table too short");
  Int index;
  std::memcpy(&index, kIndex, sizeof index);
  return index;
}

// Loads the first n (0 < n < lanes) elements; the other lanes hold `fill`. Masked tails keep the
// same vector arithmetic as the body instead of a scalar loop with different rounding.
template <class T>
inline typename Vec<T>::V load_partial(const T* p, int64_t n, T fill) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(T) == 4) {
    return (f32v)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << n) - 1), p);
  } else {
    return (f64v)_mm512_mask_loadu_pd(_mm512_set1_pd(fill), (__mmask8)((1u << n) - 1), p);
  }
#else
  T buffer[Vec<T>::kLanes];
  for (int i = 0; i < Vec<T>::kLanes; ++i) buffer[i] = fill;
  std::memcpy(buffer, p, (size_t)n * sizeof(T));
  return load(buffer);
#endif
}

template <class T>
inline void store_partial(T* p, typename Vec<T>::V v, int64_t n) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(T) == 4) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
  } else {
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), (__m512d)v);
  }
#else
  T buffer[Vec<T>::kLanes];
  store(buffer, v);
  std::memcpy(p, buffer, (size_t)n * sizeof(T));
#endif
}

// Non-temporal store of a whole vector to p, which must be aligned to the vector's size: the
// line goes to memory without first being read into cache (no read-for-ownership), which saves a
// third of the memory traffic of an output far larger than cache. Plain store where the target
// has no such instruction. Streamed stores are weakly ordered: end with streaming_fence().
template <class T>
inline void store_streaming(T* p, typename Vec<T>::V v) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(T) == 4) _mm512_stream_ps(p, (__m512)v); else _mm512_stream_pd(p, (__m512d)v);
#elif defined(__AVX__) && LOGITLOSS_VECTOR_BYTES == 32
  if constexpr (sizeof(T) == 4) _mm256_stream_ps(p, (__m256)v); else _mm256_stream_pd(p, (__m256d)v);
#elif defined(__SSE2__) && LOGITLOSS_VECTOR_BYTES == 16
  if constexpr (sizeof(T) == 4) _mm_stream_ps(p, (__m128)v); else _mm_stream_pd(p, (__m128d)v);
#else
  store(p, v);
#endif
}

// Orders this thread's streamed stores before its later stores (before the work is handed back).
inline void streaming_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// Loads L elements at p, or the first `count` of them (rest `fill`) when count < L.
template <class T>
inline typename Vec<T>::V load_n(const T* p, int64_t count, T fill) {
  return count == Vec<T>::kLanes ? load(p) : load_partial(p, count, fill);
}

// a * b + c with one rounding where the target has FMA, two otherwise. Every use tolerates
// either; none relies on the fused rounding for correctness.
template <class V>
inline V mul_add(V a, V b, V c) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 4) return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 8) return (V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__) && LOGITLOSS_VECTOR_BYTES == 32
  if constexpr (sizeof(V) == 32 && sizeof(lane_t<V>) == 4) return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
  if constexpr (sizeof(V) == 32 && sizeof(lane_t<V>) == 8) return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#elif defined(__ARM_NEON) && defined(LOGITLOSS_TARGET_NEON)
  if constexpr (sizeof(V) == 16 && sizeof(lane_t<V>) == 4) return (V)vfmaq_f32((float32x4_t)c, (float32x4_t)a, (float32x4_t)b);
  if constexpr (sizeof(V) == 16 && sizeof(lane_t<V>) == 8) return (V)vfmaq_f64((float64x2_t)c, (float64x2_t)a, (float64x2_t)b);
#endif
  return a * b + c;
}

// p * 2^n for integer-valued n, rounded once (into the subnormal grid when the result is that
// small). AVX-512 has this as one instruction; elsewhere two exact-or-once-rounded products,
// valid for n in [-190, 63] (float) / [-1534, 511] (double).
template <class V>
inline V scale_by_power_of_two(V p, V n) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 4) return (V)_mm512_scalef_ps((__m512)p, (__m512)n);
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 8) return (V)_mm512_scalef_pd((__m512d)p, (__m512d)n);
#endif
  using Int = typename Lanes<V>::Int;
  using UInt = typename Lanes<V>::UInt;
  constexpr int kOffset = sizeof(lane_t<V>) == 4 ? 64 : 512;
  const lane_t<V> inverse_offset = sizeof(lane_t<V>) == 4 ? 0x1p-64 : 0x1p-512;
  const UInt biased = (UInt)__builtin_convertvector(n, Int) + (typename Lanes<V>::UBits)(Lanes<V>::kExponentBias + kOffset);
  return p * (V)(biased << Lanes<V>::kMantissaBits) * inverse_offset;
}

// Prefetch into L1 (and the levels below), or into L2 and below but not L1 (x86 prefetcht1);
// never faults, so the address may lie past the end of an array.
inline void prefetch_to_l1(const void* p) { __builtin_prefetch(p, 0, 3); }
inline void prefetch_to_l2(const void* p) { __builtin_prefetch(p, 0, 2); }

template <class V, class M>
inline V select(M mask, V if_true, V if_false) {
  return mask ? if_true : if_false;
}

// Whether any lane of a comparison mask is set (one instruction and a flag test on AVX-512): for
// branching around rare-case work that every lane would otherwise pay for.
template <class M>
inline bool any_lane(M mask) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(M) == 64 && sizeof(mask[0]) == 4) return _mm512_test_epi32_mask((__m512i)mask, (__m512i)mask) != 0;
  if constexpr (sizeof(M) == 64 && sizeof(mask[0]) == 8) return _mm512_test_epi64_mask((__m512i)mask, (__m512i)mask) != 0;
#endif
  bool any = false;
  for (int i = 0; i < (int)(sizeof(M) / sizeof(mask[0])); ++i) any |= mask[i] != 0;
  return any;
}

// a > b ? a : b: one instruction on x86 (maxps, which returns its second operand when either is
// nan), so the operand order says which way a nan goes.
template <class V>
inline V max_or_second(V a, V b) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 4) return (V)_mm512_max_ps((__m512)a, (__m512)b);
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 8) return (V)_mm512_max_pd((__m512d)a, (__m512d)b);
#elif defined(__AVX2__) && LOGITLOSS_VECTOR_BYTES == 32
  if constexpr (sizeof(V) == 32 && sizeof(lane_t<V>) == 4) return (V)_mm256_max_ps((__m256)a, (__m256)b);
  if constexpr (sizeof(V) == 32 && sizeof(lane_t<V>) == 8) return (V)_mm256_max_pd((__m256d)a, (__m256d)b);
#endif
  return a > b ? a : b;
}

// max that ignores a nan in `x` (keeps `accumulator`): maxima never turn into nan, so nan is
// detected where it belongs, in the sum of exponentials. x > accumulator ? x : accumulator, which
// is max_or_second(x, accumulator) exactly (ties and +-0 included): one maxps on x86, where the
// conditional compiled to a compare and a masked move (two instructions, and for bfloat16 the
// widening done twice).
template <class V>
inline V max_ignoring_nan(V accumulator, V x) {
  return max_or_second(x, accumulator);
}

// a < b ? a : b: one instruction on x86 (minps, which returns its second operand when either is
// nan), as max_or_second.
template <class V>
inline V min_or_second(V a, V b) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 4) return (V)_mm512_min_ps((__m512)a, (__m512)b);
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 8) return (V)_mm512_min_pd((__m512d)a, (__m512d)b);
#elif defined(__AVX2__) && LOGITLOSS_VECTOR_BYTES == 32
  if constexpr (sizeof(V) == 32 && sizeof(lane_t<V>) == 4) return (V)_mm256_min_ps((__m256)a, (__m256)b);
  if constexpr (sizeof(V) == 32 && sizeof(lane_t<V>) == 8) return (V)_mm256_min_pd((__m256d)a, (__m256d)b);
#endif
  return a < b ? a : b;
}

// max(x, low) with a nan x replaced by low.
template <class V>
inline V max_replacing_nan(V x, V low) {
  return max_or_second(x, low);
}

// max(x, low) that keeps a nan in x.
template <class V>
inline V clamp_below(V x, V low) {
  return max_or_second(low, x);
}

// Where a == b: equal_sum += if_equal; elsewhere (nan included): other_sum += if_other.
// AVX-512 does each side as one masked add.
template <class V>
inline void accumulate_split(V a, V b, V if_equal, V if_other, V& equal_sum, V& other_sum) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 4) {
    const __mmask16 equal_lanes = _mm512_cmp_ps_mask((__m512)a, (__m512)b, _CMP_EQ_OQ);
    equal_sum = (V)_mm512_mask_add_ps((__m512)equal_sum, equal_lanes, (__m512)equal_sum, (__m512)if_equal);
    other_sum = (V)_mm512_mask_add_ps((__m512)other_sum, (__mmask16)~equal_lanes, (__m512)other_sum, (__m512)if_other);
    return;
  }
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 8) {
    const __mmask8 equal_lanes = _mm512_cmp_pd_mask((__m512d)a, (__m512d)b, _CMP_EQ_OQ);
    equal_sum = (V)_mm512_mask_add_pd((__m512d)equal_sum, equal_lanes, (__m512d)equal_sum, (__m512d)if_equal);
    other_sum = (V)_mm512_mask_add_pd((__m512d)other_sum, (__mmask8)~equal_lanes, (__m512d)other_sum, (__m512d)if_other);
    return;
  }
#endif
  auto equal_lanes = a == b;
  equal_sum += select(equal_lanes, if_equal, splat<V>(0));
  other_sum += select(equal_lanes, splat<V>(0), if_other);
}

// Where a != b (nan included): other_sum += if_other; returns the number of lanes where a == b.
// The unweighted form of accumulate_split: the count comes from the comparison mask by a scalar
// popcount, off the vector pipes that exp keeps busy (x86); elsewhere a lane sum.
template <class V>
inline int count_equal_accumulate_others(V a, V b, V if_other, V& other_sum) {
  constexpr int kLanes = sizeof(V) / sizeof(lane_t<V>);
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 4) {
    const __mmask16 unequal_lanes = _mm512_cmp_ps_mask((__m512)a, (__m512)b, _CMP_NEQ_UQ);
    other_sum = (V)_mm512_mask_add_ps((__m512)other_sum, unequal_lanes, (__m512)other_sum, (__m512)if_other);
    return kLanes - __builtin_popcount(unequal_lanes);
  }
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 8) {
    const __mmask8 unequal_lanes = _mm512_cmp_pd_mask((__m512d)a, (__m512d)b, _CMP_NEQ_UQ);
    other_sum = (V)_mm512_mask_add_pd((__m512d)other_sum, unequal_lanes, (__m512d)other_sum, (__m512d)if_other);
    return kLanes - __builtin_popcount(unequal_lanes);
  }
#elif defined(__AVX2__) && LOGITLOSS_VECTOR_BYTES == 32
  if constexpr (sizeof(lane_t<V>) == 4) {
    const __m256 equal_lanes = _mm256_cmp_ps((__m256)a, (__m256)b, _CMP_EQ_OQ);
    other_sum += (V)_mm256_andnot_ps(equal_lanes, (__m256)if_other);
    return __builtin_popcount(_mm256_movemask_ps(equal_lanes));
  } else {
    const __m256d equal_lanes = _mm256_cmp_pd((__m256d)a, (__m256d)b, _CMP_EQ_OQ);
    other_sum += (V)_mm256_andnot_pd(equal_lanes, (__m256d)if_other);
    return __builtin_popcount(_mm256_movemask_pd(equal_lanes));
  }
#endif
  const auto equal_lanes = a == b;
  other_sum += select(equal_lanes, splat<V>(0), if_other);
  int count = 0;
  for (int i = 0; i < kLanes; ++i) count += equal_lanes[i] != 0;
  return count;
}

template <class V>
inline V abs(V x) {
  using Int = typename Lanes<V>::Int;
  return (V)((Int)x & ~(Int)splat<V>(-0.0));
}

// Horizontal reductions: fold the upper half onto the lower half with `op` until one lane is
// left -- a fixed order (results depend on nothing but the data), a few vector operations deep.
template <class V, class Op>
inline lane_t<V> horizontal_fold(V v, Op op) {
  using T = lane_t<V>;
  if constexpr (sizeof(V) == sizeof(T)) {
    return v[0];
  } else {
    typedef T Half __attribute__((vector_size(sizeof(V) / 2)));
    Half low_half, high_half;
    std::memcpy(&low_half, &v, sizeof low_half);
    std::memcpy(&high_half, reinterpret_cast<const char*>(&v) + sizeof low_half, sizeof high_half);
    return horizontal_fold(op(low_half, high_half), op);
  }
}

template <class V>
inline lane_t<V> horizontal_max(V v) {
  return horizontal_fold(v, [](auto low_half, auto high_half) { return high_half > low_half ? high_half : low_half; });
}

template <class V>
inline lane_t<V> horizontal_add(V v) {
  return horizontal_fold(v, [](auto low_half, auto high_half) { return low_half + high_half; });
}

// Sum in double: double lanes are added as they are; float lanes are widened first.
template <class V>
inline double horizontal_sum(V v) {
  if constexpr (sizeof(lane_t<V>) == 8) {
    return horizontal_add(v);
  } else {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
    // The same sums in registers (generic code widens through the stack): halves added lane by
    // lane first, as the fold does.
    const __m512 x = (__m512)v;
    const f64v low = (f64v)_mm512_cvtps_pd(_mm512_castps512_ps256(x));
    const f64v high = (f64v)_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    return horizontal_add(low + high);
#endif
    return horizontal_add(__builtin_convertvector(v, f64w));
  }
}

// Whether every lane of a float vector is finite (two instructions with AVX-512 or AVX2).
inline bool all_finite(f32v v) {
  const f32v difference = v - v;  // 0 where finite, nan where inf or nan
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  return _mm512_cmp_ps_mask((__m512)difference, _mm512_setzero_ps(), _CMP_EQ_OQ) == 0xFFFF;
#elif defined(__AVX2__) && LOGITLOSS_VECTOR_BYTES == 32
  return _mm256_movemask_ps(_mm256_cmp_ps((__m256)difference, _mm256_setzero_ps(), _CMP_NEQ_UQ)) == 0;
#else
  bool finite = true;
  for (int i = 0; i < LOGITLOSS_VECTOR_BYTES / 4; ++i) finite &= difference[i] == 0;
  return finite;
#endif
}

// v's lanes exactly widened to double: the low and high halves of a float vector as two native-width
// double vectors (a double vector is its own low half).
inline void widen(f32v v, f64v& low, f64v& high) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  // One conversion per half in registers (generic code goes through the stack).
  const __m512 x = (__m512)v;
  low = (f64v)_mm512_cvtps_pd(_mm512_castps512_ps256(x));
  high = (f64v)_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
  return;
#elif defined(__AVX2__) && LOGITLOSS_VECTOR_BYTES == 32
  const __m256 x = (__m256)v;
  low = (f64v)_mm256_cvtps_pd(_mm256_castps256_ps128(x));
  high = (f64v)_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
  return;
#endif
  typedef float Half __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES / 2)));
  Half low_half, high_half;
  std::memcpy(&low_half, &v, sizeof low_half);
  std::memcpy(&high_half, reinterpret_cast<const char*>(&v) + sizeof low_half, sizeof high_half);
  low = __builtin_convertvector(low_half, f64v);
  high = __builtin_convertvector(high_half, f64v);
}

// widen's inverse: two double vectors rounded to float lanes, low half first.
inline f32v narrow(f64v low, f64v high) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  const __m256 low_floats = _mm512_cvtpd_ps((__m512d)low), high_floats = _mm512_cvtpd_ps((__m512d)high);
  return (f32v)_mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(low_floats)),
                                                   _mm256_castps_pd(high_floats), 1));
#elif defined(__AVX2__) && LOGITLOSS_VECTOR_BYTES == 32
  return (f32v)_mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps((__m256d)low)),
                                    _mm256_cvtpd_ps((__m256d)high), 1);
#endif
  typedef float Half __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES / 2)));
  const Half low_half = __builtin_convertvector(low, Half), high_half = __builtin_convertvector(high, Half);
  f32v v;
  std::memcpy(&v, &low_half, sizeof low_half);
  std::memcpy(reinterpret_cast<char*>(&v) + sizeof low_half, &high_half, sizeof high_half);
  return v;
}

// Adds v's lanes, exactly widened to double, into two accumulators of native width (the low and
// high halves of a float vector; a double vector goes into `low`). Native-width accumulators stay
// in registers, where a double vector twice the register width would not.
inline void add_widened(f32v v, f64v& low, f64v& high) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  // One conversion per half (generic code converts in quarters through the stack).
  const __m512 x = (__m512)v;
  low += (f64v)_mm512_cvtps_pd(_mm512_castps512_ps256(x));
  high += (f64v)_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
  return;
#endif
  f64v low_part, high_part;
  widen(v, low_part, high_part);
  low += low_part;
  high += high_part;
}
inline void add_widened(f64v v, f64v& low, f64v&) { low += v; }

// A sum of lanes in double, held as native-width halves (registers, where a double vector of
// twice the register width would live on the stack). total() adds in the order a horizontal sum
// of the widened lanes would: lane by lane across the halves, then folded.
struct WideSum {
  f64v low = splat<f64v>(0), high = splat<f64v>(0);
  template <class V>
  void add(V v) { add_widened(v, low, high); }
  double total() const { return horizontal_add(low + high); }
};

// Error-free difference (Knuth's TwoSum): a - b == hi + lo exactly, hi = fl(a - b).
// Used wherever x - max feeds exp: the rounding of x - max would otherwise cost up to
// |x - max| * eps / 2 of relative accuracy in exp(x - max).
template <class V>
inline V difference_with_error(V a, V b, V& lo) {
  V hi = a - b;
  V b_virtual = a - hi;
  V a_virtual = hi + b_virtual;
  lo = (a - a_virtual) + (b_virtual - b);
  // lo is clamped to [-2^-10, 2^-10], so that every exp helper taking (hi, lo) may treat lo as
  // a small correction (exp(hi) (1 + lo), or lo added to the reduced argument) whatever hi is.
  // |lo| <= ULP(hi)/2 exceeds 2^-10 only for |hi| >= 2^14 (float; 2^43 double), where exp(hi)
  // is 0 or inf whatever lo is; but there lo can be as large as 2^103 (float) and, for an
  // infinite hi, nan: unclamped it turned exp(-2e38) into a stale 7.8e-22 (exp(hi) taken at the
  // exp clamp, times 1 + lo) and, on the table-driven AVX-512 path, into inf * 0 = nan. Two
  // max/min, no compare (a compare into an AVX-512 mask register takes a multiply pipe on Zen 4);
  // the max replaces a nan lo.
  lo = max_replacing_nan(lo, splat<V>(-0x1p-10));
  lo = min_or_second(lo, splat<V>(0x1p-10));
  return hi;
}
