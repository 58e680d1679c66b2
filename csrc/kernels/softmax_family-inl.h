// logsumexp / softmax / log_softmax kernels, forward and backward, written once for every ISA.
//
// Included per target inside its anonymous namespace, after vector-inl.h and math-inl.h.
//
// Precision policy
//   * Lanes hold the data type (float or double). Rows are processed in chunks of kChunk
//     elements; each chunk's lane accumulators are flushed into double, and horizontal sums are
//     taken in double, so a row of any length sums with about the accuracy of a double sum.
//   * exp only ever sees x - max <= 0, the max of the chunk; chunks are then combined in double
//     (fold_stats), in order, so results never depend on threads.
//   * Where exp(x - c) is an output (softmax, gradients), x - c is formed error-free (TwoSum)
//     and the low part folded back (exp_nonpositive(hi, lo): into exp's reduced argument, or as
//     exp(hi) * (1 + lo)): exp's own error (~1 ULP) is all that remains, independent of |x - c|.
//   * Maximal terms are counted apart from the others (see SliceStats).
//   Error budget per output element: exp 1 ULP + the TwoSum fold + one rounding for the scale.
//
// Memory passes (contiguous row): each chunk is read from memory once, by pass 1 (its max), and
// pass 1 runs inside the previous chunk's pass 2 (NextChunk): pass 2 re-reads its chunk from L1
// for the sum of exp while it takes the next chunk's max and prefetches, into L2, the chunk three
// ahead (past the end of the row too: for a matrix that is the next rows). Zen 4, logsumexp
// (4096, 32000), ns per element: separate pass 1 and an L1 prefetch of the next chunk 0.25; pass 1
// fused 0.235; and the prefetch three chunks ahead into L2 0.205 (into L1 0.26: the lines
// prefetched that far evict the chunks in use). x.max() 0.135. Not measured on Intel, where an
// earlier layout (separate pass 1) ran better with L1 prefetches. Chunks of 8 KiB: against 4 KiB
// softmax and cross_entropy's gradient at (4096, 32000) were 10% and 16% faster (fewer runs of
// differently scaled chunks), logsumexp and float64 the same. Chunks share the row's running max
// as their reference where they can (chunk_reference), so short chunks add no exp calls.

constexpr int64_t kChunk = kRowChunk;  // 8 KiB of float, 16 KiB of double
constexpr int64_t kBlock = 16;         // iterations (2 vectors each) summed in lanes before widening
// 2^kSumScale (see exp_nonpositive_sum_term) as a lane value, and its inverse in double.
template <class T>
constexpr T sum_scale() {
  if constexpr (sizeof(T) == 4) return 0x1p64f; else return 0x1p512;
}
template <class T>
constexpr int sum_scale_exponent() {
  return MathConstants<typename Vec<T>::V>::kSumScale;
}
template <class T>
constexpr double sum_unscale() {
  if constexpr (sizeof(T) == 4) return 0x1p-64; else return 0x1p-512;
}

// Combines the statistics of two parts of a slice, in double (order matters for rounding only).
inline SliceStats fold_stats(SliceStats a, SliceStats b) {
  const double m = b.max > a.max ? b.max : a.max;
  if (m == -__builtin_inf()) return {m, a.count + b.count, a.others + b.others};
  auto rescaled_others = [m](const SliceStats& s) {
    return s.max < m ? (s.others + s.count) * ::exp(s.max - m) : s.others;
  };
  return {m, (a.max < m ? 0.0 : a.count) + (b.max < m ? 0.0 : b.count), rescaled_others(a) + rescaled_others(b)};
}

// Stores f(i, count) -- the vector of results for positions i .. i + count - 1 -- for every
// position, masked at the tail. kStream: for an output far larger than cache, whole vectors at
// vector-aligned addresses are streamed (store_streaming: no read-for-ownership, a third less
// memory traffic), the unaligned head and the tail stored plainly (NumPy's large arrays start 16
// bytes past a page boundary, so rows rarely align). The caller ends with streaming_fence().
template <class T, bool kStream = false, class F>
inline void map_row(int64_t n, T* out, F f) {
  constexpr int L = Vec<T>::kLanes;
  int64_t i = 0;
  if constexpr (kStream) {
    constexpr uintptr_t kBytes = sizeof(typename Vec<T>::V);
    const uintptr_t address = reinterpret_cast<uintptr_t>(out);
    if (address % sizeof(T) == 0) {
      i = (int64_t)((kBytes - address % kBytes) % kBytes / sizeof(T));
      if (i > n) i = n;
      if (i > 0) store_partial(out, f(0, i), i);
      for (; i + L <= n; i += L) store_streaming(out + i, f(i, L));
    }
  }
  for (; i + L <= n; i += L) store(out + i, f(i, L));
  if (i < n) store_partial(out + i, f(i, n - i), n - i);
}

// Calls body(mode), mode a std::bool_constant of `stream`: the store choice made once, outside
// the loops (see map_row).
template <class Body>
inline void with_stream_mode(bool stream, Body body) {
  if (stream) body(std::true_type{}); else body(std::false_type{});
}

// Pass 1 of a chunk: its max over entries with nonzero weight (nan ignored: a nan shows up in
// pass 2, where exp(nan - max) poisons `others`).
template <class T, bool kWeighted>
LOGITLOSS_FLATTEN T chunk_max(const T* x, const T* weight, int64_t n) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::kLanes;
  const T neg_inf = -__builtin_inf();
  auto effective = [&](V xv, V wv) { return kWeighted ? select(wv == 0, splat<V>(neg_inf), xv) : xv; };
  auto load_weight = [&](int64_t i) { return kWeighted ? load(weight + i) : splat<V>(1); };
  V m0 = splat<V>(neg_inf), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    m0 = max_ignoring_nan(m0, effective(load(x + i), load_weight(i)));
    m1 = max_ignoring_nan(m1, effective(load(x + i + L), load_weight(i + L)));
    m2 = max_ignoring_nan(m2, effective(load(x + i + 2 * L), load_weight(i + 2 * L)));
    m3 = max_ignoring_nan(m3, effective(load(x + i + 3 * L), load_weight(i + 3 * L)));
  }
  for (; i + L <= n; i += L) m1 = max_ignoring_nan(m1, effective(load(x + i), load_weight(i)));
  if (i < n) {
    V wv = kWeighted ? load_partial(weight + i, n - i, T(0)) : splat<V>(1);
    m2 = max_ignoring_nan(m2, effective(load_partial(x + i, n - i, neg_inf), wv));
  }
  return horizontal_max(max_ignoring_nan(max_ignoring_nan(m0, m1), max_ignoring_nan(m2, m3)));
}

// Pass 2 of a chunk: count of x == max (sum of their weights) and sum of weight * exp(x - max)
// over the others; optionally stores exp(x - max) * 2^kSumScale (compensated) to `out`.
// Prefetches `ahead`. Lanes hold count and others in units of 2^-kSumScale (see
// exp_nonpositive_sum_term); the flush to double removes the scale exactly.
// Cross-entropy's target terms taken in pass 2 (chunk_sum's kGap) for class-index targets:
// gap += sum v_c (max - x_c), mass += sum v_c, v_c = offset * w_c (w_c = 1 without weights), the
// sums chunk_target_gap takes in a pass of its own otherwise. max - x_c is -(x_c - max), the
// difference pass 2 forms anyway. The caller makes sure it cannot overflow (gap_fusable).
template <class T>
struct ChunkGap {
  const T* weight;  // at the chunk's first class; null: 1
  T offset;
  double gap = 0.0, mass = 0.0;
};

// Whether pass 2 may take the target terms against reference `max`: class-index targets whose
// v_c are at most 1/C (t.bounded_mass: smoothing times the largest |weight| at most 1), and max - x
// finite for every finite x (max far below the dtype's largest value; max - (-largest) then rounds
// to at most the largest). Then no lane sum can overflow: a lane holds at most C/16 + 1 terms of
// at most (1/C) * largest per block, two lanes are added, and the blocks are summed in double.
// Otherwise the separate pass (chunk_target_gap), which redoes an overflowing block in double.
template <class T>
inline bool gap_fusable(const TargetTerms<T>& t, T max) {
  const T bound = sizeof(T) == 4 ? T(0x1p100) : T(0x1p900);
  return !t.target && t.bounded_mass && max - max == 0 && max < bound;
}

// The chunk after the one pass 2 is summing, whose pass 1 (chunk_max) that pass 2 carries out:
// its loads and maxima interleave with the exps. As a loop of its own between two exp loops,
// pass 1 stalled the exp pipes at every chunk boundary (nothing of pass 2 can start before the
// chunk's max is known, and the processor's window does not reach from one exp loop into the
// next): logsumexp in cache 0.23 -> 0.22 ns per element (Zen 4).
template <class T>
struct NextChunk {
  const T* x;       // its first element (n == 0: no next chunk)
  const T* weight;  // kWeighted: its weights
  int64_t n;
  T max;            // chunk_max of it: set by chunk_sum, or by first_chunk for a row's first
};

// A row's chunks start at multiples of kChunk; the one at `start` (n = 0 past the row's end).
template <class T>
inline NextChunk<T> chunk_at(const T* x, const T* weight, int64_t n, int64_t start) {
  const int64_t len = n - start < kChunk ? n - start : kChunk;
  return {x + start, weight ? weight + start : nullptr, len > 0 ? len : 0, T(-__builtin_inf())};
}

template <class T, bool kWeighted>
inline NextChunk<T> first_chunk(const T* x, const T* weight, int64_t n) {
  NextChunk<T> chunk = chunk_at(x, weight, n, 0);
  chunk.max = chunk_max<T, kWeighted>(chunk.x, chunk.weight, chunk.n);
  return chunk;
}

// What pass 2 of a chunk prefetches, as far as the chunk is long (chunk_sum).
template <class T>
struct Prefetch {
  const T* at;
  bool into_l1;
};

// For the chunk at `start` of a row of n: in a row of several chunks, three chunks on, into L2
// (see the header); a row of one chunk has no next chunk to take the max of inside pass 2, so it
// prefetches what follows it (for a matrix, the next row, whose pass 1 then reads L1) into L1.
template <class T>
inline Prefetch<T> prefetch_plan(const T* x, int64_t n, int64_t start) {
  if (n <= kChunk) return {x + n, true};
  return {x + start + 3 * kChunk, false};
}

template <class T, bool kWeighted, bool kCompensated, int kGap = 0>  // kGap: 0 none, 1 uniform, 2 weighted
LOGITLOSS_FLATTEN void chunk_sum(const T* x, const T* weight, int64_t n, T max, T* out, Prefetch<T> ahead, double& count_total,
                      double& others_total, NextChunk<T>& next, ChunkGap<T>* gap = nullptr) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::kLanes;
  static_assert(kGap == 0 || !kWeighted, "target terms are cross-entropy's, which has no slice weights");
  const T neg_inf = -__builtin_inf();
  const V max_v = splat<V>(max);
  auto difference_term = [&](V xv, V& difference) {  // exp(x - max) * 2^kSumScale, and x - max rounded
    if (!kCompensated) {
      difference = xv - max_v;
      return exp_nonpositive_sum_term(difference);
    }
    V lo;
    difference = difference_with_error(xv, max_v, lo);
    return exp_nonpositive_sum_term(difference, lo);
  };
  auto sum_term = [&](V xv) {
    V difference;
    return difference_term(xv, difference);
  };
  // Target terms: v (max - x) and v, v = offset * w, accumulated like the sums.
  const V gap_offset = splat<V>(kGap ? gap->offset : T(0));
  auto target_mass = [&](int64_t at) { return kGap == 2 ? gap_offset * load(gap->weight + at) : gap_offset; };
  WideSum gap_wide, mass_wide;
  auto term = [&](V xv, V wv, V& count, V& others) {
    if (kWeighted) xv = select(wv == 0, splat<V>(neg_inf), xv);
    V e = sum_term(xv);
    if (kWeighted) e = e * wv;
    accumulate_split(xv, max_v, wv * sum_scale<T>(), e, count, others);
    return e;
  };
  WideSum count_wide, others_wide;
  int64_t equal_lanes = 0;  // unweighted: the count, as an integer
  // The next chunk's max: its first next_fused elements beside this chunk's pairs of vectors
  // (chunk_max's arithmetic; a max does not depend on the order), the rest after the loop.
  const int64_t next_fused = (next.n < n ? next.n : n) / (2 * L) * (2 * L);
  auto next_effective = [&](int64_t at) {
    const V xv = load(next.x + at);
    return kWeighted ? select(load(next.weight + at) == 0, splat<V>(neg_inf), xv) : xv;
  };
  V next_m0 = splat<V>(neg_inf), next_m1 = next_m0;
  int64_t i = 0;
  while (i + 2 * L <= n) {
    // Blocks of at most kBlock iterations: lane sums of that many terms, then widened to double.
    V c0 = splat<V>(0), c1 = c0, s0 = c0, s1 = c0, g0 = c0, g1 = c0, m0 = c0;
    for (int64_t b = 0; b < kBlock && i + 2 * L <= n; ++b, i += 2 * L) {
      if (ahead.into_l1) {
        prefetch_to_l1(ahead.at + i);
        prefetch_to_l1(ahead.at + i + (64 / sizeof(T)));
      } else {
        prefetch_to_l2(ahead.at + i);
        prefetch_to_l2(ahead.at + i + (64 / sizeof(T)));
      }
      if (i < next_fused) {
        next_m0 = max_ignoring_nan(next_m0, next_effective(i));
        next_m1 = max_ignoring_nan(next_m1, next_effective(i + L));
      }
      V e0, e1;
      if (kWeighted) {
        e0 = term(load(x + i), load(weight + i), c0, s0);
        e1 = term(load(x + i + L), load(weight + i + L), c1, s1);
      } else {
        const V x0 = load(x + i), x1 = load(x + i + L);
        V d0, d1;
        e0 = difference_term(x0, d0);
        e1 = difference_term(x1, d1);
        equal_lanes += count_equal_accumulate_others(x0, max_v, e0, s0);
        equal_lanes += count_equal_accumulate_others(x1, max_v, e1, s1);
        if (kGap) {
          const V v0 = target_mass(i), v1 = target_mass(i + L);
          g0 = mul_add(-v0, d0, g0);
          g1 = mul_add(-v1, d1, g1);
          m0 += v0 + v1;
        }
      }
      if (out) {
        store(out + i, e0);
        store(out + i + L, e1);
      }
    }
    if (kWeighted) count_wide.add(c0 + c1);
    others_wide.add(s0 + s1);
    if (kGap) {
      gap_wide.add(g0 + g1);
      mass_wide.add(m0);
    }
  }
  if constexpr (kGap != 0) {  // the last vectors' target terms, before the tail below may overwrite x
    V g = splat<V>(0), m = g;
    for (int64_t j = i; j < n; j += L) {
      const int64_t lanes = n - j < L ? n - j : L;
      const auto valid = lane_index<V>() < (typename Lanes<V>::Bits)lanes;
      const V v = kGap == 2 ? gap_offset * load_n(gap->weight + j, lanes, T(0)) : select(valid, gap_offset, splat<V>(0));
      g = mul_add(v, max_v - load_n(x + j, lanes, max), g);  // padding lanes: v (max - max) = 0
      m += v;
    }
    gap_wide.add(g);
    mass_wide.add(m);
    gap->gap += gap_wide.total();
    gap->mass += mass_wide.total();
  }
  V c0 = splat<V>(0), s0 = c0;
  if (i + L <= n) {
    V e = term(load(x + i), kWeighted ? load(weight + i) : splat<V>(1), c0, s0);
    if (out) store(out + i, e);
    i += L;
  }
  if (i < n) {
    // Masked tail: padding lanes are computed, then discarded by select (never multiplied by 0:
    // nan * 0 is nan).
    const int64_t lanes = n - i;
    V wv = kWeighted ? load_partial(weight + i, lanes, T(0)) : splat<V>(1);
    V count = splat<V>(0), others = splat<V>(0);
    V e = term(load_partial(x + i, lanes, T(0)), wv, count, others);
    auto is_valid = lane_index<V>() < (typename Lanes<V>::Bits)lanes;
    c0 += select(is_valid, count, splat<V>(0));
    s0 += select(is_valid, others, splat<V>(0));
    if (out) store_partial(out + i, e, lanes);
  }
  count_wide.add(c0);
  others_wide.add(s0);
  if (next.n > 0) {
    const T fused = horizontal_max(max_ignoring_nan(next_m0, next_m1));
    const T rest = chunk_max<T, kWeighted>(next.x + next_fused, kWeighted ? next.weight + next_fused : nullptr,
                                           next.n - next_fused);
    next.max = rest > fused ? rest : fused;
  }
  count_total += count_wide.total() * sum_unscale<T>() + (double)equal_lanes;
  others_total += others_wide.total() * sum_unscale<T>();
}

// A factor held in double, applied to lanes without underflow or overflow on the way. When the
// factor (its mantissa rounded to T) is a normal number of T, one multiplication by it: one
// rounding. Otherwise s = m * 2^k (m in [0.5, 1)) multiplies as (x * m) * 2^k (a tiny class weight
// times 2^-kSumScale would flush to 0 as one float); without AVX-512's scalef the power of two is
// applied as two normal factors 2^k1 * 2^k2.
template <class T>
struct SplitFactor {
  bool is_whole;
  typename Vec<T>::V whole, mantissa, exponent, first_power, second_power;
};

// AVX-512 always takes the split form: scalef produces subnormal results at full speed, where a
// plain multiplication into the subnormals takes a microcode assist (tiny softmax outputs, padding
// lanes of short rows).
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
constexpr bool kAlwaysSplitFactor = true;
#else
constexpr bool kAlwaysSplitFactor = false;
#endif

// 2^k for k in double's normal exponent range, from the bits (no libm call).
inline double power_of_two_double(int k) {
  const uint64_t bits = (uint64_t)(k + 1023) << 52;
  double p;
  std::memcpy(&p, &bits, sizeof p);
  return p;
}

// s * 2^extra_exponent, without forming the product in double where it may be out of range there.
// (Called per row: short rows feel a libm call.)
template <class T>
inline SplitFactor<T> split_factor(double s, int extra_exponent) {
  using V = typename Vec<T>::V;
  const double smallest_normal = sizeof(T) == 4 ? 0x1p-126 : 0x1p-1022;
  const double largest = sizeof(T) == 4 ? 0x1.fffffep127 : 0x1.fffffffffffffp1023;
  // Rounding s 2^e to T rounds its mantissa, as the split form below does, wherever it is normal.
  const double scaled = s * power_of_two_double(extra_exponent);
  if (!kAlwaysSplitFactor && scaled >= smallest_normal && scaled <= largest) {
    const V zero = splat<V>(0);
    return {true, splat<V>((T)scaled), zero, zero, zero, zero};
  }
  int k = 0;
  const T m = (T)::frexp(s, &k);
  k += extra_exponent;
  const int k1 = k / 2, k2 = k - k1;
  return {false, splat<V>(0), splat<V>(m), splat<V>((T)k), splat<V>((T)::ldexp(1.0, k1)), splat<V>((T)::ldexp(1.0, k2))};
}

template <class T>
inline typename Vec<T>::V apply_split_factor(typename Vec<T>::V x, const SplitFactor<T>& f) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  return scale_by_power_of_two(x * f.mantissa, f.exponent);
#else
  return x * f.mantissa * f.first_power * f.second_power;
#endif
}

template <class T>
inline typename Vec<T>::V apply_factor(typename Vec<T>::V x, const SplitFactor<T>& f) {
  return f.is_whole ? x * f.whole : apply_split_factor(x, f);
}

// Calls body(apply), apply(x) = x times the factor, with the choice of form made once, outside
// the loop that body runs.
template <class T, class Body>
inline void with_factor(const SplitFactor<T>& f, Body body) {
  using V = typename Vec<T>::V;
  if (f.is_whole) {
    const V whole = f.whole;
    body([whole](V x) { return x * whole; });
  } else {
    body([&f](V x) { return apply_split_factor(x, f); });
  }
}

// ---------------------------------------------------------------------------------------------
// Row kernels

// The reference a chunk's terms are taken against: the row's running max where it already covers
// the chunk's top, so that folding the chunk in needs no rescaling (fold_stats calls exp only
// when a chunk raises the max: O(log chunks) times in a row of random logits, once in a sorted
// one); else the chunk's own top. Short chunks then cost no more than long ones, and short
// chunks let the processor overlap one chunk's loads with the previous chunk's arithmetic.
template <class T>
inline T chunk_reference(T chunk_top, const SliceStats& row, int64_t c) {
  return c == 0 || chunk_top > (T)row.max ? chunk_top : (T)row.max;
}


template <class T, bool kWeighted, bool kCompensated>
SliceStats row_stats_impl(const T* x, const T* weight, int64_t n) {
  SliceStats row{-__builtin_inf(), 0.0, 0.0};
  NextChunk<T> next = first_chunk<T, kWeighted>(x, weight, n);
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t len = next.n;
    const T max = chunk_reference<T>(next.max, row, c);
    SliceStats chunk{(double)max, 0.0, 0.0};
    next = chunk_at(x, weight, n, c + len);
    chunk_sum<T, kWeighted, kCompensated>(x + c, kWeighted ? weight + c : nullptr, len, max, nullptr,
                                          prefetch_plan(x, n, c), chunk.count, chunk.others, next);
    row = c == 0 ? chunk : fold_stats(row, chunk);
  }
  return row;
}

template <class T>
inline bool is_small_row(int64_t n);

// A row of at most kVectors vectors (tiny classification heads) held in registers: the chunked
// path's arithmetic with one load per vector and no chunks. Padding lanes load as -inf and get a
// term of 0.
template <class T, int kVectors>
struct SmallRow {
  typename Vec<T>::V x[kVectors];
  typename Vec<T>::V e[kVectors];  // exp(x - max) * 2^kSumScale
  SliceStats stats;
};

template <class T, int kVectors, bool kCompensated>
SmallRow<T, kVectors> small_row(const T* x, int64_t n) {
  using V = typename Vec<T>::V;
  using Bits = typename Lanes<V>::Bits;
  constexpr int L = Vec<T>::kLanes;
  const T neg_inf = -__builtin_inf();
  auto lanes = [&](int j) { return n - j * L < L ? n - j * L : (int64_t)L; };  // > 0 for j < kVectors
  SmallRow<T, kVectors> row;
  V max_v = splat<V>(neg_inf);
  for (int j = 0; j < kVectors; ++j) {
    row.x[j] = load_n(x + j * L, lanes(j), neg_inf);
    max_v = max_ignoring_nan(max_v, row.x[j]);
  }
  const T max = horizontal_max(max_v);
  max_v = splat<V>(max);
  V others = splat<V>(0);
  int64_t equal = 0;
  for (int j = 0; j < kVectors; ++j) {
    V e;
    if (kCompensated) {
      V lo;
      const V hi = difference_with_error(row.x[j], max_v, lo);
      e = exp_nonpositive_sum_term(hi, lo);
    } else {
      e = exp_nonpositive_sum_term(row.x[j] - max_v);
    }
    V compared = row.x[j];
    if (lanes(j) < L) {  // padding lanes: a nan (never equal to the max) with a term of 0
      const auto valid = lane_index<V>() < (Bits)lanes(j);
      e = select(valid, e, splat<V>(0));
      compared = select(valid, compared, splat<V>(__builtin_nan("")));
    }
    row.e[j] = e;
    equal += count_equal_accumulate_others(compared, max_v, e, others);
  }
  row.stats = {(double)max, (double)equal, horizontal_sum(others) * sum_unscale<T>()};
  return row;
}

template <class T>
SliceStats row_stats(const T* x, const T* weight, int64_t n, int flags) {
  const bool compensated = flags & kStatsCompensated;
  if (!weight && is_small_row<T>(n)) {  // a row in two vectors or fewer: no chunk machinery
    if (n <= Vec<T>::kLanes) return compensated ? small_row<T, 1, true>(x, n).stats : small_row<T, 1, false>(x, n).stats;
    return compensated ? small_row<T, 2, true>(x, n).stats : small_row<T, 2, false>(x, n).stats;
  }
  if (weight) {
    return compensated ? row_stats_impl<T, true, true>(x, weight, n) : row_stats_impl<T, true, false>(x, weight, n);
  }
  return compensated ? row_stats_impl<T, false, true>(x, nullptr, n) : row_stats_impl<T, false, false>(x, nullptr, n);
}

// Plain statistics of 16 float rows of n <= 16 elements, one row per lane: a vector per column,
// gathered (rows[i] = base + offset[i]). small_row's arithmetic exactly -- its max, its terms, its
// count, and its horizontal sum's order (halves folded lane by lane, in double) -- so the results
// are bitwise row_stats'. One short row alone is all latency: its horizontal max and sum cannot
// overlap anything (a (32, 10) logsumexp spent a third of its call in them).
template <class T>
void rows_stats_in_lanes(const T* base, const int32_t* offset, int64_t n, SliceStats* out) {
  static_assert(sizeof(T) == 4 && Vec<T>::kLanes == 16, "16 float lanes");
  using V = typename Vec<T>::V;
  using I = typename Lanes<V>::I;
  constexpr int L = 16;
  I index;
  std::memcpy(&index, offset, sizeof index);
  V column[L], top[L];
  for (int c = 0; c < L; ++c) {
    if (c < n) column[c] = gather16(base, index + c);
    top[c] = max_ignoring_nan(splat<V>(-__builtin_inf()), c < n ? column[c] : splat<V>(-__builtin_inf()));
  }
  // horizontal_max's order (c + 8 onto c, then c + 4, ...; ties keep c): which of +0 and -0 wins.
  for (int half = L / 2; half >= 1; half /= 2) {
    for (int c = 0; c < half; ++c) top[c] = select(top[c + half] > top[c], top[c + half], top[c]);
  }
  const V max_v = top[0];
  // Per column: its term where x != max (nan included), 0 elsewhere; the count of x == max.
  V count = splat<V>(0);
  f64v low[L], high[L];  // the terms widened, rows 0-7 and 8-15
  for (int c = 0; c < L; ++c) {
    V others = splat<V>(0);
    if (c < n) {
      const V e = exp_nonpositive_sum_term(column[c] - max_v);
      const auto equal = column[c] == max_v;
      others = select(equal, splat<V>(0), e);
      count += select(equal, splat<V>(1), splat<V>(0));
    }
    low[c] = __builtin_convertvector(__builtin_shufflevector(others, others, 0, 1, 2, 3, 4, 5, 6, 7), f64v);
    high[c] = __builtin_convertvector(__builtin_shufflevector(others, others, 8, 9, 10, 11, 12, 13, 14, 15), f64v);
  }
  // horizontal_sum's order over a row's 16 lanes: lane c + 8 onto c, then c + 4, c + 2, c + 1.
  for (int half = L / 2; half >= 1; half /= 2) {
    for (int c = 0; c < half; ++c) {
      low[c] += low[c + half];
      high[c] += high[c + half];
    }
  }
  alignas(64) T max_lanes[L], count_lanes[L];
  alignas(64) double others_lanes[L];
  store(max_lanes, max_v);
  store(count_lanes, count);
  std::memcpy(others_lanes, &low[0], sizeof low[0]);
  std::memcpy(others_lanes + 8, &high[0], sizeof high[0]);
  for (int i = 0; i < L; ++i) out[i] = {(double)max_lanes[i], (double)count_lanes[i], others_lanes[i] * sum_unscale<T>()};
}

// Plain statistics of `count` rows of n elements, rows[i] the i-th (contiguous rows): rows of one
// float vector 16 at a time in lanes where the target gathers, else row by row.
template <class T>
void rows_stats(const T* const* rows, int64_t count, int64_t n, SliceStats* out) {
  int64_t r = 0;
  if constexpr (kHasGather16 && sizeof(T) == 4) {
    if (n >= 1 && n <= Vec<T>::kLanes) {
      for (; r + Vec<T>::kLanes <= count; r += Vec<T>::kLanes) {
        int32_t offset[Vec<T>::kLanes];
        bool in_range = true;
        for (int i = 0; i < Vec<T>::kLanes; ++i) {
          // In elements from the first row (an unaligned array may space rows by a byte count
          // that is no multiple of the element: those go row by row).
          const int64_t bytes = reinterpret_cast<const char*>(rows[r + i]) - reinterpret_cast<const char*>(rows[r]);
          const int64_t d = bytes / (int64_t)sizeof(T);
          in_range = in_range && bytes % (int64_t)sizeof(T) == 0 && d >= -0x7fff0000 && d <= 0x7fff0000;
          offset[i] = (int32_t)d;
        }
        if (!in_range) break;
        rows_stats_in_lanes<T>(rows[r], offset, n, out + r);
      }
    }
  }
  for (; r < count; ++r) out[r] = row_stats<T>(rows[r], nullptr, n, kStatsPlain);
}

// The target terms of one chunk (before pass 2, which may overwrite x when out == x):
// gap += sum v_c (max - x_c), mass += sum v_c, v_c = w_c (a1 y_c + a0).
template <class T, bool kHasTarget, bool kHasWeight>
LOGITLOSS_FLATTEN void chunk_target_gap_impl(const T* x, int64_t n, T max, const TargetTerms<T>& t, int64_t offset, double& gap,
                                  double& mass) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int L = Vec<T>::kLanes;
  const V max_v = splat<V>(max), a1 = splat<V>(t.target_scale), a0 = splat<V>(t.target_offset);
  const T* y = kHasTarget ? t.target + offset : nullptr;
  const T* w = kHasWeight ? t.weight + offset : nullptr;
  auto target_mass = [&](int64_t i, int64_t lanes) {
    V v = kHasTarget ? mul_add(a1, load_n(y + i, lanes, T(0)), a0) : a0;
    return kHasWeight ? v * load_n(w + i, lanes, T(0)) : v;
  };
  // v * (max - x): 0 * inf is nan where a masked (-inf) logit has zero target mass, as torch.
  W gap_wide = splat<W>(0), mass_wide = splat<W>(0);  // rare paths: tails, overflow, probabilities
  WideSum gap_lanes, mass_lanes;
  int64_t i = 0;
  if constexpr (kHasTarget && sizeof(T) == 4) {
    // Probability targets: v_c = w_c (a1 y_c + a0) is subnormal in float for targets near 0, where
    // it would lose its relative precision (and v_c (max - x_c) far more of the loss's). Form v_c
    // and its products in double lanes instead.
    auto wide = [](V v) { return __builtin_convertvector(v, W); };
    auto wide_mass = [&](int64_t at, int64_t lanes) {
      W v = wide(a1) * wide(load_n(y + at, lanes, T(0))) + wide(a0);
      return kHasWeight ? v * wide(load_n(w + at, lanes, T(0))) : v;
    };
    const W lane = __builtin_convertvector(lane_index<V>(), W);
    for (; i < n; i += L) {
      const int64_t lanes = n - i < L ? n - i : L;
      const W v = lanes == L ? wide_mass(i, L) : select(lane < (double)lanes, wide_mass(i, lanes), splat<W>(0));
      gap_wide += v * (wide(max_v) - wide(load_n(x + i, lanes, max)));
      mass_wide += v;
    }
  }
  while (i + L <= n) {
    const int64_t block_start = i;
    // Four independent accumulators: one chain of dependent fma would be latency-bound.
    V g0 = splat<V>(0), g1 = g0, g2 = g0, g3 = g0, m0 = g0, m1 = g0;
    for (int64_t b = 0; b < kBlock / 2 && i + 4 * L <= n; ++b, i += 4 * L) {
      const V v0 = target_mass(i, L), v1 = target_mass(i + L, L), v2 = target_mass(i + 2 * L, L),
              v3 = target_mass(i + 3 * L, L);
      g0 = mul_add(v0, max_v - load(x + i), g0);
      g1 = mul_add(v1, max_v - load(x + i + L), g1);
      g2 = mul_add(v2, max_v - load(x + i + 2 * L), g2);
      g3 = mul_add(v3, max_v - load(x + i + 3 * L), g3);
      m0 += v0 + v1;
      m1 += v2 + v3;
    }
    if (i == block_start) {  // fewer than four vectors left
      for (; i + L <= n; i += L) {
        const V v = target_mass(i, L);
        g0 = mul_add(v, max_v - load(x + i), g0);
        m0 += v;
      }
    }
    g0 = (g0 + g1) + (g2 + g3);
    m0 += m1;
    if (!(horizontal_max(abs(g0)) < (T)__builtin_inf())) {
      // An infinite (or nan) partial sum: max - x may have overflowed the dtype (logits of opposite
      // signs near its limits) although the loss is finite. Redo the block in double.
      g0 = splat<V>(0);
      for (int64_t j = block_start; j < i; j += L) {
        gap_wide += __builtin_convertvector(target_mass(j, L), W) *
                    (__builtin_convertvector(max_v, W) - __builtin_convertvector(load(x + j), W));
      }
    }
    gap_lanes.add(g0);
    mass_lanes.add(m0);
  }
  if (i < n) {
    const int64_t lanes = n - i;
    const V v = select(lane_index<V>() < (typename Lanes<V>::Bits)lanes, target_mass(i, lanes), splat<V>(0));
    gap_wide += __builtin_convertvector(v, W) *
                (__builtin_convertvector(max_v, W) - __builtin_convertvector(load_partial(x + i, lanes, max), W));
    mass_wide += __builtin_convertvector(v, W);
  }
  gap += horizontal_sum(gap_wide) + gap_lanes.total();
  mass += horizontal_sum(mass_wide) + mass_lanes.total();
}

template <class T>
inline void chunk_target_gap(const T* x, int64_t n, T max, const TargetTerms<T>& t, int64_t offset, double& gap,
                             double& mass) {
  if (t.target) {
    if (t.weight) chunk_target_gap_impl<T, true, true>(x, n, max, t, offset, gap, mass);
    else chunk_target_gap_impl<T, true, false>(x, n, max, t, offset, gap, mass);
  } else {
    if (t.weight) chunk_target_gap_impl<T, false, true>(x, n, max, t, offset, gap, mass);
    else chunk_target_gap_impl<T, false, false>(x, n, max, t, offset, gap, mass);
  }
}

// Pass 3 of row_softmax_fused for one chunk: out = p * scale - bias * v, p read from `terms`
// (out itself, or the staging buffer when out is streamed).
template <class T, bool kHasTarget, bool kHasWeight, bool kStream>
inline void chunk_apply_terms(const T* terms, T* out, int64_t n, const SplitFactor<T>& scale, const TargetTerms<T>& t,
                              int64_t offset) {
  using V = typename Vec<T>::V;
  const V a1 = splat<V>(t.target_scale), a0 = splat<V>(t.target_offset), bias = splat<V>(t.bias);
  const T* y = kHasTarget ? t.target + offset : nullptr;
  const T* w = kHasWeight ? t.weight + offset : nullptr;
  if constexpr (!kHasTarget) {
    // v_c = a0 w_c: bias * v_c as (bias a0) w_c, one fused multiply-add per vector.
    const V bias_a0 = splat<V>(t.bias * t.target_offset);
    with_factor(scale, [&](auto apply) {
      map_row<T, kStream>(n, out, [&](int64_t i, int64_t count) {
        const V p = apply(load_n(terms + i, count, T(0)));
        return kHasWeight ? mul_add(-bias_a0, load_n(w + i, count, T(0)), p) : p - bias_a0;
      });
    });
    return;
  }
  with_factor(scale, [&](auto apply) {
    map_row<T, kStream>(n, out, [&](int64_t i, int64_t count) {
      V v = mul_add(a1, load_n(y + i, count, T(0)), a0);
      if (kHasWeight) v = v * load_n(w + i, count, T(0));
      return apply(load_n(terms + i, count, T(0))) - bias * v;
    });
  });
}

// A row that fits in kVectors vectors (tiny classification heads): the same arithmetic as the
// chunked path, with no chunks, no scratch and one load per vector.
template <class T, int kVectors>
FusedStats row_softmax_fused_small(const T* x, int64_t n, T* out, const TargetTerms<T>& t) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  using Bits = typename Lanes<V>::Bits;
  constexpr int L = Vec<T>::kLanes;
  auto lanes = [&](int j) { return n - j * L < L ? n - j * L : (int64_t)L; };  // > 0 for j < kVectors
  const SmallRow<T, kVectors> row = small_row<T, kVectors, true>(x, n);
  const V(&e)[kVectors] = row.e;
  const T max = (T)row.stats.max;
  FusedStats result{row.stats, 0.0, 0.0};
  const bool has_terms = t.target_scale != 0 || t.target_offset != 0;
  V v[kVectors];
  // Gap relative to the max if it is finite (else 0, and moved to the max below).
  const T reference = max - max == 0 ? max : T(0);
  W gap = splat<W>(0), mass = splat<W>(0);
  for (int j = 0; j < kVectors; ++j) {
    v[j] = splat<V>(0);
    if (!has_terms) continue;
    v[j] = t.target ? mul_add(splat<V>(t.target_scale), load_n(t.target + j * L, lanes(j), T(0)), splat<V>(t.target_offset))
                    : splat<V>(t.target_offset);
    if (t.weight) v[j] = v[j] * load_n(t.weight + j * L, lanes(j), T(0));
    const auto valid = lane_index<V>() < (Bits)lanes(j);
    v[j] = select(valid, v[j], splat<V>(0));
    // The sums take v in double, formed there: in float it is subnormal for targets near 0.
    W vw = __builtin_convertvector(splat<V>(t.target_offset), W);
    if (t.target) {
      vw += __builtin_convertvector(splat<V>(t.target_scale), W) *
            __builtin_convertvector(load_n(t.target + j * L, lanes(j), T(0)), W);
    }
    if (t.weight) vw *= __builtin_convertvector(load_n(t.weight + j * L, lanes(j), T(0)), W);
    vw = select(__builtin_convertvector(valid, typename Lanes<W>::I) != 0, vw, splat<W>(0));
    gap += vw * (__builtin_convertvector(splat<V>(reference), W) - __builtin_convertvector(load_n(x + j * L, lanes(j), reference), W));
    mass += vw;
  }
  if (has_terms) {
    result.gap = horizontal_sum(gap);
    result.mass = horizontal_sum(mass);
    if (reference != max) result.gap += result.mass * ((double)max - reference);
  }
  if (out) {
    const SliceStats& st = result.stats;
    const SplitFactor<T> scale =
        split_factor<T>((t.scale_base + t.scale_per_mass * result.mass) / (st.count + st.others), -sum_scale_exponent<T>());
    for (int j = 0; j < kVectors; ++j) {
      const V o = apply_factor(e[j], scale) - splat<V>(t.bias) * v[j];
      if (lanes(j) == L) store(out + j * L, o);
      else store_partial(out + j * L, o, lanes(j));
    }
  }
  return result;
}

// Rows of at most two vectors take the small path.
template <class T>
inline bool is_small_row(int64_t n) {
  return n <= 2 * Vec<T>::kLanes;
}

template <class T>
FusedStats row_softmax_fused_small_any(const T* x, int64_t n, T* out, const TargetTerms<T>& t) {
  return n <= Vec<T>::kLanes ? row_softmax_fused_small<T, 1>(x, n, out, t) : row_softmax_fused_small<T, 2>(x, n, out, t);
}

template <class T>
FusedStats row_softmax_fused(const T* x, int64_t n, T* out, double* scratch, T* staging, const TargetTerms<T>& t) {
  using V = typename Vec<T>::V;
  if (is_small_row<T>(n)) return row_softmax_fused_small_any(x, n, out, t);
  const bool has_terms = t.target_scale != 0 || t.target_offset != 0;
  FusedStats result{{-__builtin_inf(), 0.0, 0.0}, 0.0, 0.0};
  SliceStats& row = result.stats;
  int64_t chunks = 0;
  NextChunk<T> next = first_chunk<T, false>(x, nullptr, n);
  for (int64_t c = 0; c < n; c += kChunk, ++chunks) {
    const int64_t len = next.n;
    const T max = chunk_reference<T>(next.max, row, c);
    next = chunk_at<T>(x, nullptr, n, c + len);
    scratch[2 * chunks] = (double)max;
    SliceStats chunk{(double)max, 0.0, 0.0};
    T* terms = staging ? staging + c : (out ? out + c : nullptr);  // exp(x - chunk max), scaled in pass 3
    T* const terms_out = out ? terms : nullptr;
    if (has_terms && gap_fusable(t, max)) {  // the target terms taken in pass 2
      ChunkGap<T> gap{t.weight ? t.weight + c : nullptr, t.target_offset};
      const Prefetch<T> ahead = prefetch_plan(x, n, c);
      if (t.weight) chunk_sum<T, false, true, 2>(x + c, nullptr, len, max, terms_out, ahead, chunk.count, chunk.others, next, &gap);
      else chunk_sum<T, false, true, 1>(x + c, nullptr, len, max, terms_out, ahead, chunk.count, chunk.others, next, &gap);
      result.gap += gap.gap;
      result.mass += gap.mass;
      scratch[2 * chunks + 1] = gap.mass;
    } else {
      if (has_terms) {
        // Before pass 2 (which may overwrite x). Gaps are taken from a finite reference (the chunk
        // max, or 0 for a chunk of -inf) and moved to the row max below.
        const T reference = max - max == 0 ? max : T(0);
        double mass = 0.0;
        chunk_target_gap(x + c, len, reference, t, c, result.gap, mass);
        scratch[2 * chunks + 1] = mass;
        result.mass += mass;
      }
      chunk_sum<T, false, true>(x + c, nullptr, len, max, terms_out, prefetch_plan(x, n, c), chunk.count, chunk.others, next);
    }
    row = c == 0 ? chunk : fold_stats(row, chunk);
  }
  if (has_terms) {
    for (int64_t k = 0; k < chunks; ++k) {
      const double reference = scratch[2 * k] - scratch[2 * k] == 0 ? scratch[2 * k] : 0.0;
      if (reference != row.max) result.gap += scratch[2 * k + 1] * (row.max - reference);
    }
  }
  if (!out) return result;
  const double inverse_total = 1.0 / (row.count + row.others);
  const double out_scale = t.scale_base + t.scale_per_mass * result.mass;
  with_stream_mode(staging != nullptr, [&](auto mode) {
    constexpr bool kStream = mode;
    // Runs of chunks with the same reference (most of a row shares its max) are written by one
    // call: each call stores its unaligned head and tail plainly, and those partial lines amid
    // streamed ones, one per chunk (of 4 KiB then), cost 12% of a (4096, 32000) softmax (Zen 4).
    for (int64_t k = 0, next = 0; k < chunks; k = next) {
      const double reference = scratch[2 * k];
      for (next = k + 1; next < chunks && scratch[2 * next] == reference;) ++next;
      const int64_t offset = k * kChunk;
      T* chunk_out = out + offset;
      T* terms = (kStream ? staging : out) + offset;
      const int64_t len = (next * kChunk < n ? next * kChunk : n) - offset;
      // A chunk of nothing but -inf (a masked block) holds exp(-inf - -inf) = nan: its softmax is 0.
      const bool all_masked = reference == -__builtin_inf();
      const SplitFactor<T> scale =
          split_factor<T>(all_masked ? 0.0 : ::exp(reference - row.max) * inverse_total * out_scale, -sum_scale_exponent<T>());
      if (!has_terms) {
        if (all_masked) {
          map_row<T, kStream>(len, chunk_out, [&](int64_t, int64_t) { return splat<V>(0); });
        } else {
          with_factor(scale, [&](auto apply) {
            map_row<T, kStream>(len, chunk_out, [&](int64_t i, int64_t count) { return apply(load_n(terms + i, count, T(0))); });
          });
        }
      } else {
        // A masked chunk's terms are first zeroed (scale 0 on nan would give nan).
        if (all_masked) map_row<T>(len, terms, [&](int64_t, int64_t) { return splat<V>(0); });
        if (t.target) {
          if (t.weight) chunk_apply_terms<T, true, true, kStream>(terms, chunk_out, len, scale, t, offset);
          else chunk_apply_terms<T, true, false, kStream>(terms, chunk_out, len, scale, t, offset);
        } else {
          if (t.weight) chunk_apply_terms<T, false, true, kStream>(terms, chunk_out, len, scale, t, offset);
          else chunk_apply_terms<T, false, false, kStream>(terms, chunk_out, len, scale, t, offset);
        }
      }
    }
  });
  if (staging) streaming_fence();
  return result;
}

// exp(x - shift) with the difference formed error-free. kShiftIsMax: the caller guarantees
// x <= shift (or x = -inf), so the cheaper exp_nonpositive applies.
template <bool kShiftIsMax = false, class V>
inline V exp_of_difference(V x, V shift) {
  V lo;
  V hi = difference_with_error(x, shift, lo);
  if constexpr (kShiftIsMax) return exp_nonpositive(hi, lo);
  V e = exp(hi);
  return mul_add(e, lo, e);
}

template <class T>
void row_scaled_exp(const T* x, const T* weight, int64_t n, T shift, T scale, T* out) {
  using V = typename Vec<T>::V;
  const V shift_v = splat<V>(shift), scale_v = splat<V>(scale);
  map_row<T>(n, out, [&](int64_t i, int64_t count) {
    V e = exp_of_difference(load_n(x + i, count, T(0)), shift_v) * scale_v;
    if (weight) {
      V w = load_n(weight + i, count, T(0));
      e = select(w == 0, splat<V>(0), e * w);
    }
    return e;
  });
}

// (x - max) - log_total: both terms are <= 0, so the second subtraction cannot cancel and the
// two roundings stay within one ULP of the result; no error-free difference is needed.
template <class T>
void row_log_softmax(const T* x, int64_t n, T max, T log_total, T* out, bool stream) {
  using V = typename Vec<T>::V;
  const V max_v = splat<V>(max), log_total_v = splat<V>(log_total);
  with_stream_mode(stream, [&](auto mode) {
    map_row<T, mode>(n, out, [&](int64_t i, int64_t count) { return (load_n(x + i, count, T(0)) - max_v) - log_total_v; });
  });
  if (stream) streaming_fence();
}

template <class T>
double row_dot(const T* a, const T* b, int64_t n) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int L = Vec<T>::kLanes;
  W total = splat<W>(0);
  int64_t j = 0;
  while (j + 2 * L <= n) {
    V s0 = splat<V>(0), s1 = s0;
    for (int64_t blk = 0; blk < kBlock && j + 2 * L <= n; ++blk, j += 2 * L) {
      s0 = b ? mul_add(load(a + j), load(b + j), s0) : s0 + load(a + j);
      s1 = b ? mul_add(load(a + j + L), load(b + j + L), s1) : s1 + load(a + j + L);
    }
    total += __builtin_convertvector(s0 + s1, W);
  }
  for (; j < n; j += L) {
    const int64_t lanes = n - j < L ? n - j : L;
    V av = load_n(a + j, lanes, T(0));
    total += __builtin_convertvector(b ? av * load_n(b + j, lanes, T(0)) : av, W);
  }
  return horizontal_sum(total);
}

template <class T>
void row_softmax_backward(const T* g, const T* y, int64_t n, T dot, T* out) {
  using V = typename Vec<T>::V;
  const V dot_v = splat<V>(dot);
  map_row<T>(n, out, [&](int64_t i, int64_t count) {
    return load_n(y + i, count, T(0)) * (load_n(g + i, count, T(0)) - dot_v);
  });
}

template <class T>
void row_log_softmax_backward(const T* g, const T* y, int64_t n, T sum_g, T* out) {
  using V = typename Vec<T>::V;
  const V sum_v = splat<V>(sum_g);
  map_row<T>(n, out, [&](int64_t i, int64_t count) {
    V neg_sum_times_p = exp(load_n(y + i, count, T(0))) * -sum_v;
    return load_n(g + i, count, T(0)) + neg_sum_times_p;
  });
}

// ---------------------------------------------------------------------------------------------
// Column kernels: the reduced axis is not the contiguous one (e.g. axis 0 of a C-ordered
// matrix). Lanes run across a tile of up to kColumnTile contiguous columns; no transposed copy.
//
// Statistics: the tile is walked row after row, whole tile rows, which is one sequential sweep
// through memory that the hardware prefetcher streams (walking down a few columns at a time
// instead, rows a large stride apart, left the loads waiting on memory one line each: 0.72 ns
// per float element from memory against 0.39 in cache). Per column the state is held in L1: a
// running max M, and the sums of the current block of kColumnBlockRows rows in lanes of the data
// type: the count of x == M and the sum of exp(x - M) over the others (scaled by 2^kSumScale, as
// in chunk_sum), widened into running double sums at the end of each block. One exp per
// element: terms are taken against the running max, as chunk_reference does for rows. When an
// element exceeds its column's M (a few times per column in random data) that column vector's
// sums are first moved into double and rescaled:
//   others <- (others + count) exp(M - M'), count <- 0, M <- M',
// the scale factor rounded once to the data type.

constexpr int64_t kColumnBlockRows = 32;
constexpr int64_t kColumnGroupRows = 8;  // rows walked side by side: 8 sequential streams
constexpr int64_t kColumnSeedRows = 128;
// Each load prefetches (into L2) its column vector kColumnPrefetchRows rows on: the hardware
// prefetcher alone does not keep eight short streams ahead. Axis 0 of (32000, 4096) float:
// 38 -> 33 ms (Zen 4; 8, 16 and 64 rows on about the same, into L1 slower).
constexpr int64_t kColumnPrefetchRows = 16;
template <class T>
constexpr int64_t kColumnVectorsMax = kColumnTile / Vec<T>::kLanes;

template <class T, bool kCompensated>
void column_stats_impl(const T* x, int64_t rows, int64_t stride, int64_t ncols, SliceStats* out) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  using WideMask = typename Lanes<W>::I;
  constexpr int L = Vec<T>::kLanes;
  const T neg_inf = -__builtin_inf();
  const int64_t nvec = (ncols + L - 1) / L;
  const int64_t tail_lanes = ncols - (nvec - 1) * L;  // lanes in the last vector (1..L)
  V max[kColumnVectorsMax<T>], count[kColumnVectorsMax<T>], others[kColumnVectorsMax<T>];
  W run_count[kColumnVectorsMax<T>], run_others[kColumnVectorsMax<T>];
  for (int64_t j = 0; j < nvec; ++j) {
    max[j] = splat<V>(neg_inf);
    count[j] = others[j] = splat<V>(0);
    run_count[j] = run_others[j] = splat<W>(0);
  }
  auto flush = [&](int64_t j) {
    run_count[j] += __builtin_convertvector(count[j], W) * sum_unscale<T>();
    run_others[j] += __builtin_convertvector(others[j], W) * sum_unscale<T>();
    count[j] = others[j] = splat<V>(0);
  };
  // Element xv exceeds the running max in some lane (nan never does: it is ignored here, and
  // poisons `others` below, as in chunk_sum).
  auto raise_max = [&](int64_t j, V xv) {
    flush(j);
    const V new_max = max_ignoring_nan(max[j], xv);
    const WideMask raised = __builtin_convertvector(max[j] < new_max, WideMask);
    const W scale = __builtin_convertvector(exp_nonpositive(max[j] - new_max), W);
    run_others[j] = select(raised, (run_others[j] + run_count[j]) * scale, run_others[j]);
    run_count[j] = select(raised, splat<W>(0), run_count[j]);
    max[j] = new_max;
  };
  // Column vector j over rows [r0, r1): the state in registers for the group. kTiesRare: one
  // comparison per vector in the common case, no lane at or above its column's max (no raise,
  // nothing to count; a nan compares false and goes to `others`, as in accumulate_split), and a
  // branch to the full path otherwise. Not in the seeded rows, where each column meets its seed
  // (16 ties a vector: a mispredicted branch for one vector in 8 of a 128-row walk, 10% slower
  // with 150 rows); after them only a raise meets the branch. Axis 0 of (32000, 4096) float
  // 41 -> 37 ms with it (Zen 4).
  auto add_terms = [&](auto ties_rare, int64_t j, int64_t r0, int64_t r1, int64_t lanes) {
    constexpr bool kTiesRare = decltype(ties_rare)::value;
    V m = max[j], c = count[j], o = others[j];
    for (int64_t r = r0; r < r1; ++r) {
      // Padding lanes hold -inf: a term of 0 (or a count, in an all -inf column), never read.
      if (r + kColumnPrefetchRows < rows) prefetch_to_l2(x + (r + kColumnPrefetchRows) * stride + j * L);
      const V xv = load_n(x + r * stride + j * L, lanes, neg_inf);
      const bool at_or_above = !kTiesRare || any_lane(xv >= m);
      if (at_or_above && any_lane(xv > m)) {
        count[j] = c;
        others[j] = o;
        raise_max(j, xv);
        m = max[j];
        c = count[j];
        o = others[j];
      }
      V e;
      if (kCompensated) {
        V lo;
        const V hi = difference_with_error(xv, m, lo);
        e = exp_nonpositive_sum_term(hi, lo);
      } else {
        e = exp_nonpositive_sum_term(xv - m);
      }
      if (at_or_above) accumulate_split(xv, m, splat<V>(sum_scale<T>()), e, c, o);
      else o += e;
    }
    count[j] = c;
    others[j] = o;
  };
  // Seed the running max with the first rows' max: each raise costs a flush and an exp, and with
  // a raise pending in any of a vector's lanes a fresh max would otherwise move in most of the
  // first few hundred rows.
  const int64_t seed_rows = rows < kColumnSeedRows ? rows : kColumnSeedRows;
  for (int64_t r = 0; r < seed_rows; ++r) {
    for (int64_t j = 0; j < nvec; ++j) {
      max[j] = max_ignoring_nan(max[j], load_n(x + r * stride + j * L, j + 1 < nvec ? L : tail_lanes, neg_inf));
    }
  }
  for (int64_t b0 = 0; b0 < rows; b0 += kColumnBlockRows) {
    const int64_t b1 = b0 + kColumnBlockRows < rows ? b0 + kColumnBlockRows : rows;
    for (int64_t r0 = b0; r0 < b1; r0 += kColumnGroupRows) {
      const int64_t r1 = r0 + kColumnGroupRows < b1 ? r0 + kColumnGroupRows : b1;
      auto group = [&](auto ties_rare) {
        for (int64_t j = 0; j + 1 < nvec; ++j) add_terms(ties_rare, j, r0, r1, L);
        add_terms(ties_rare, nvec - 1, r0, r1, tail_lanes);
      };
      if (r0 < seed_rows) group(std::false_type{}); else group(std::true_type{});
    }
    for (int64_t j = 0; j < nvec; ++j) flush(j);
  }
  for (int64_t c = 0; c < ncols; ++c) {
    out[c] = SliceStats{max[c / L][c % L], run_count[c / L][c % L], run_others[c / L][c % L]};
  }
}

template <class T>
void column_stats(const T* x, int64_t rows, int64_t stride, int64_t ncols, SliceStats* out, int flags) {
  if (flags & kStatsCompensated) column_stats_impl<T, true>(x, rows, stride, ncols, out);
  else column_stats_impl<T, false>(x, rows, stride, ncols, out);
}

// out[r, c] = f(x[r, c], c-th parameters) for a tile, row by row.
template <class T, class F>
inline void column_map(const T* x, int64_t rows, int64_t x_stride, int64_t ncols, T* out, int64_t out_stride, F f) {
  for (int64_t r = 0; r < rows; ++r) {
    map_row<T>(ncols, out + r * out_stride, [&](int64_t c, int64_t count) {
      return f(load_n(x + r * x_stride + c, count, T(0)), c, count);
    });
  }
}

template <class T>
void column_scaled_exp(const T* x, int64_t rows, int64_t x_stride, int64_t ncols, const T* shift, const T* scale,
                       T* out, int64_t out_stride) {
  using V = typename Vec<T>::V;
  column_map(x, rows, x_stride, ncols, out, out_stride, [&](V xv, int64_t column, int64_t lanes) {
    return exp_of_difference<true>(xv, load_n(shift + column, lanes, T(0))) * load_n(scale + column, lanes, T(0));
  });
}

template <class T>
void column_log_softmax(const T* x, int64_t rows, int64_t x_stride, int64_t ncols, const T* max, const T* log_total,
                        T* out, int64_t out_stride) {
  using V = typename Vec<T>::V;
  column_map(x, rows, x_stride, ncols, out, out_stride, [&](V xv, int64_t column, int64_t lanes) {
    return (xv - load_n(max + column, lanes, T(0))) - load_n(log_total + column, lanes, T(0));  // as row_log_softmax
  });
}

inline void log_totals(const SliceStats* stats, int64_t n, double* out) {
  constexpr int L = Vec<double>::kLanes;
  for (int64_t i = 0; i < n; i += L) {
    const int64_t lanes = n - i < L ? n - i : L;
    f64v count = splat<f64v>(1.0), others = splat<f64v>(0.0);  // padding lanes: log 1 = 0
    for (int64_t j = 0; j < lanes; ++j) {
      count[j] = stats[i + j].count;
      others[j] = stats[i + j].others;
    }
    // log(1) and log1p(0) are exactly 0; a single maximum per row (count 1) is the common case.
    bool single_maxima = true;
    for (int j = 0; j < L; ++j) single_maxima &= count[j] == 1.0;
    const f64v total = single_maxima ? log1p(others) : log(count) + log1p(others / count);
    for (int64_t j = 0; j < lanes; ++j) out[i + j] = total[j];
  }
}

template <class T>
TypedKernels<T> softmax_family_kernels() {
  TypedKernels<T> k;
  k.row_stats = row_stats<T>;
  k.rows_stats = rows_stats<T>;
  k.row_softmax_fused = row_softmax_fused<T>;
  k.row_scaled_exp = row_scaled_exp<T>;
  k.row_log_softmax = row_log_softmax<T>;
  k.row_dot = row_dot<T>;
  k.row_softmax_backward = row_softmax_backward<T>;
  k.row_log_softmax_backward = row_log_softmax_backward<T>;
  k.column_stats = column_stats<T>;
  k.column_scaled_exp = column_scaled_exp<T>;
  k.column_log_softmax = column_log_softmax<T>;
  return k;
}
