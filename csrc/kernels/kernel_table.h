// The table of kernels one ISA target exports. Plain C++: included by the target files, the
// drivers and dispatch alike. Every kernel works on contiguous rows or on a tile of contiguous
// columns; iteration over the rest of an array, threads and edge cases live in the drivers
// (csrc/drivers/).
#pragma once

#include <cstdint>
#include <cstring>

namespace logitloss {

// ml_dtypes.bfloat16 (torch.bfloat16) in memory: the upper 16 bits of a float32. The kernels read
// it into float32 lanes in registers (a 16-bit shift) and compute in float32; results are rounded
// once to it, to nearest even (nan stays nan, beyond the range is +-inf). A plain aggregate.
struct bfloat16 {
  uint16_t bits;
};

inline float bfloat16_to_float(bfloat16 v) {
  const uint32_t bits = (uint32_t)v.bits << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline bfloat16 float_to_bfloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if (f != f) return {(uint16_t)((bits >> 16) | 0x40)};  // quiet nan, sign kept
  return {(uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16)};
}

// The type a storage type is computed in: float for bfloat16, itself otherwise.
template <class S>
struct ComputeType {
  using type = S;
};
template <>
struct ComputeType<bfloat16> {
  using type = float;
};
template <class S>
using compute_t = typename ComputeType<S>::type;

// Statistics of one reduction slice, in double whatever the data type:
//   max    = largest element (nan ignored; over entries with nonzero weight when weighted),
//   count  = number of elements equal to max (the sum of their weights when weighted),
//   others = sum of weight * exp(x - max) over the elements not equal to max (nan if any is nan).
// The maximal terms are kept out of `others` so log(count) + log1p(others / count) keeps full
// relative precision when one term dominates (SciPy's method; logsumexp([0, -40]) = 4.2e-18).
constexpr int64_t kRowChunk = 2048;   // elements per chunk of a row (kernels' unit of reduction)
constexpr int64_t kColumnTile = 2048;  // most columns one column-kernel call takes

struct SliceStats {
  double max;
  double count;
  double others;
};

// Cross-entropy's logit options riding along a fused softmax pass (kernels/logit_transform-inl.h):
// the pass reads out = softcap tanh(source / softcap) / temperature (softcap 0: no cap,
// source / temperature), which it writes itself chunk by chunk just ahead of its own reading (the
// transform's memory reads overlap the pass's arithmetic, and the row is read from memory once);
// chain (softcap only, else null) receives d out / d source, by which the pass multiplies its
// output. out and chain: per-thread rows of the row's length.
template <class T>
struct LogitTransform {
  const T* source;
  T* out;
  T* chain;
  double softcap, temperature;
};

// A weighted target distribution riding along a fused softmax pass (cross-entropy):
//   v_c = weight_c * (target_scale * target_c + target_offset)
// (null weight: all ones; null target: all zeros; both scales 0: no target terms). The output,
// when asked for, is out_c = ((scale_base + scale_per_mass * mass) * softmax_c - bias * v_c) chain_c
// (chain_c = 1 without a chain).
// hessian (null: none; only with `out`): a second output, hessian_c = (scale_base +
// scale_per_mass * mass) * softmax_c * (1 - softmax_c), the diagonal of the Hessian of the
// cross-entropy (kernels/hessian_terms-inl.h); stream_hessian: written with streaming stores (as
// row_softmax_fused's `staging`: far larger than cache, not an input, not fresh).
// A plain aggregate (no default member initializers: no constructor code in any ISA target).
template <class T>
struct TargetTerms {
  const T* weight;
  const T* target;
  T target_scale, target_offset;
  double scale_base, scale_per_mass;
  T bias;
  // Every |v_c| = |target_offset * weight_c| <= 1 / C (index targets): see gap_fusable.
  bool bounded_mass;
  T* hessian;
  bool stream_hessian;
  // z-loss's share of the output scale: out_c gains scale_per_lse * lse * softmax_c, lse the
  // row's log-sum-exp (0: none, and the scale is formed exactly as without it).
  double scale_per_lse;
  // Cross-entropy's logit options (null: none): the pass's x must then be transform->out. The
  // output (not the Hessian) is multiplied by transform->chain, when set, as it is written, so a
  // gradient with respect to the untransformed logits streams out once.
  const LogitTransform<T>* transform;
};

// Statistics of a fused softmax pass: the slice's, plus gap = sum v_c (max - x_c) and
// mass = sum v_c, so that sum_c v_c * (-log softmax_c) = gap + mass * log_total.
struct FusedStats {
  SliceStats stats;
  double gap;
  double mass;
};

enum StatsFlags : int {
  kStatsPlain = 0,
  // Use an error-free x - max before exp: needed where exp(x - max) itself is an output of full
  // relative precision (a cross-entropy loss that is a sum of a few tiny terms).
  kStatsCompensated = 1,
};

// Sums over one row for p = softmax(scale * x): the max, the count of elements equal to it, and
// over the others sum e_c, plus sum e_c u_c and sum e_c u_c^2 over all, with u_c = x_c - max and
// e_c = exp(scale u_c) (kernels/softmax_moments-inl.h): the row's lse, E_p[x] and Var_p[x].
struct SoftmaxMoments {
  double max;
  double count;
  double others;
  double first;
  double second;
};

// Binary cross-entropy with logits over n contiguous elements of each operand (see
// binary_cross_entropy-inl.h for the formulas). Null pointers: no weight (1), no pos_weight (1), no
// per-element upstream gradient (1), no loss or gradient output. `grad` may be `input` itself.
template <class T>
struct BinaryCrossEntropySpan {
  const T* input;
  const T* target;
  const T* weight;
  const T* pos_weight;
  const T* upstream;
  T grad_scale;  // multiplies every gradient element (1 / numel for a mean)
  T* loss;
  T* grad;
  // Optional (only with grad and the loss): the second derivative, grad_scale (times upstream) *
  // w * a * sigmoid(x) * sigmoid(-x) (binary_cross_entropy-inl.h).
  T* hessian;
};

// The sum of a call's losses, and the same sum times 2^-kLossSumScaleExponent, which stays
// finite where the plain sum of double losses overflows although their mean does not.
constexpr int kLossSumScaleExponent = 128;
// value * 2^exponent: a sum that may lie beyond double's range (exponent 0 where it does not).
struct ScaledSum {
  double value;
  int exponent;
};

struct LossSum {
  double plain;
  double scaled;
};

// Doubles of row_kl_div's scratch for a row of n: its two exponentials per element, padded to the
// widest vector.
inline int64_t kl_div_scratch_size(int64_t n) { return 2 * (n + 8); }

template <class T>
struct TypedKernels {
  // Row kernels: x[0..n) contiguous, n >= 1. `weight` may be null (all ones).
  SliceStats (*row_stats)(const T* x, const T* weight, int64_t n, int flags);
  // row_stats(rows[i], nullptr, n, kStatsPlain) into out[i] for i < count, bitwise; faster for
  // many short rows.
  void (*rows_stats)(const T* const* rows, int64_t count, int64_t n, SliceStats* out);
  // One pass of softmax with one exp per element (compensated: full relative precision), and the
  // target terms: out (may be null: statistics only) as in TargetTerms; `out` may be `x` itself.
  // scratch: 2 * ceil(n / kRowChunk) doubles. `out` is meaningful only when the max is finite and
  // others not nan, which the caller checks. staging: null (out is written, then rescaled in
  // place), or n elements that hold the unscaled terms while `out` is written once, streamed
  // (as row_log_softmax's `stream`; out must not be x).
  FusedStats (*row_softmax_fused)(const T* x, int64_t n, T* out, double* scratch, T* staging,
                                  const TargetTerms<T>& terms);
  // The softmax moments of x[0..n) at `scale` > 0 (SoftmaxMoments).
  SoftmaxMoments (*row_softmax_moments)(const T* x, int64_t n, double scale);
  // row_softmax_fused's statistics and target terms of x / temperature with the quotient
  // (x - max) / temperature compensated (kernels/tempered_statistics-inl.h); max not divided.
  FusedStats (*row_tempered_stats)(const T* x, int64_t n, double temperature, const TargetTerms<T>& terms);
  // The logit options' Hessian diagonal with respect to z from the fused pass's (with respect to
  // z''), in place (kernels/logit_transform-inl.h).
  void (*row_transformed_hessian)(T* hessian, const T* grad, const T* transformed, const T* chain, int64_t n,
                                  double max, double total, double square_scale, double factor, double curvature);
  // entropy_with_logits (kernels/entropy-inl.h): the moments at scale 1 with an error-free x - max
  // (second not taken), and the gradient out = scale exp(x - max) ((max - x) - mean_gap).
  SoftmaxMoments (*row_entropy_moments)(const T* x, int64_t n);
  void (*row_entropy_gradient)(const T* x, int64_t n, T max, T mean_gap, T scale, T* out, bool stream);
  // out = scale * weight * exp(x - shift) with an error-free x - shift; 0 where weight == 0.
  void (*row_scaled_exp)(const T* x, const T* weight, int64_t n, T shift, T scale, T* out);
  // out = (x - max) - log_total (no cancellation: both terms are <= 0). stream: `out` is far
  // larger than cache and not an input; it is written with non-temporal stores (no
  // read-for-ownership), ordered by a fence before the kernel returns.
  void (*row_log_softmax)(const T* x, int64_t n, T max, T log_total, T* out, bool stream);
  // sum(a * b) (sum(a) when b is null), accumulated in double, as value * 2^exponent: the sum
  // of the whole range of the data type may be beyond it (and beyond double's).
  ScaledSum (*row_dot)(const T* a, const T* b, int64_t n);
  // out = y * (g - dot)
  void (*row_softmax_backward)(const T* g, const T* y, int64_t n, T dot, T* out);
  // out = g - exp(y) * sum_g, sum_g beyond T's range included (each output may be finite still).
  void (*row_log_softmax_backward)(const T* g, const T* y, int64_t n, ScaledSum sum_g, T* out);
  // Returns the sum of the (weighted) losses when want_loss (or no gradient is asked for), else
  // zeros and the loss is not computed.
  LossSum (*binary_cross_entropy_with_logits)(const BinaryCrossEntropySpan<T>& span, int64_t n, bool want_loss);

  // KL(softmax(target / T) || softmax(input / T)) of one row pair, and (grad not null) grad =
  // grad_scale * (softmax(input / T) - softmax(target / T)) (kernels/divergence-inl.h).
  // scratch: kl_div_scratch_size(n) doubles.
  double (*row_kl_div)(const T* input, const T* target, int64_t n, double inverse_temperature, double grad_scale,
                       T* grad, double* scratch);
  // Liger's generalized Jensen-Shannon divergence at 0 <= beta <= 1 of one row pair, and (grad not
  // null) its gradient with respect to `input` times grad_scale * T (kernels/jensen_shannon-inl.h).
  // scratch: kl_div_scratch_size(n) doubles.
  double (*row_jsd)(const T* input, const T* target, int64_t n, double beta, double inverse_temperature,
                    double grad_scale, T* grad, double* scratch);

  // Column kernels: `ncols` contiguous columns down `rows` rows that are `stride` elements apart
  // (column_stats: ncols <= kColumnTile). Per-column parameters and results are arrays of
  // length ncols.
  void (*column_stats)(const T* x, int64_t rows, int64_t stride, int64_t ncols, SliceStats* out, int flags);
  // out = scale * exp(x - shift) per column, shift >= every x of its column (the column max).
  void (*column_scaled_exp)(const T* x, int64_t rows, int64_t x_stride, int64_t ncols, const T* shift,
                            const T* scale, T* out, int64_t out_stride);
  void (*column_log_softmax)(const T* x, int64_t rows, int64_t x_stride, int64_t ncols, const T* max,
                             const T* log_total, T* out, int64_t out_stride);
};

// The kernels that read bfloat16 logits in registers (float32 lanes) and write bfloat16 outputs
// rounded once; weights, targets, staging and every scalar are float32. row_softmax_fused: as
// TypedKernels' with staging required whenever `out` is (the terms exp(x - reference) are held in
// float32 there, never rounded to bfloat16 before the final scale), and `stream` choosing
// streaming stores for `out`. Other functions take bfloat16 through a float32 copy (bindings).
struct BFloat16Kernels {
  SliceStats (*row_stats)(const bfloat16* x, const float* weight, int64_t n, int flags);
  void (*rows_stats)(const bfloat16* const* rows, int64_t count, int64_t n, SliceStats* out);
  FusedStats (*row_softmax_fused)(const bfloat16* x, int64_t n, bfloat16* out, double* scratch, float* staging,
                                  bool stream, const TargetTerms<float>& terms);
  void (*row_log_softmax)(const bfloat16* x, int64_t n, float max, float log_total, bfloat16* out, bool stream);
  ScaledSum (*row_dot)(const bfloat16* a, const bfloat16* b, int64_t n);
  void (*row_softmax_backward)(const bfloat16* g, const bfloat16* y, int64_t n, float dot, bfloat16* out);
  void (*row_log_softmax_backward)(const bfloat16* g, const bfloat16* y, int64_t n, ScaledSum sum_g, bfloat16* out);
  SoftmaxMoments (*row_entropy_moments)(const bfloat16* x, int64_t n);
  void (*row_entropy_gradient)(const bfloat16* x, int64_t n, float max, float mean_gap, float scale, bfloat16* out,
                               bool stream);
};

// The kernel table type of a storage type.
template <class S>
struct KernelsOfType {
  using type = TypedKernels<S>;
};
template <>
struct KernelsOfType<bfloat16> {
  using type = BFloat16Kernels;
};
template <class S>
using KernelsOf = typename KernelsOfType<S>::type;

// Test-only: the vector math helpers applied elementwise to contiguous data.
enum class MathFunction { kExp, kExpNonpositive, kExpSumTerm, kLog, kLog1p, kLog1pUnitInterval, kTanh, kSechSquared };

struct KernelTable {
  const char* name;
  TypedKernels<float> f32;
  TypedKernels<double> f64;
  BFloat16Kernels bf16;
  // out[i] = log(count) + log1p(others / count) of stats[i], for statistics with a finite max,
  // count >= 1 and finite others >= 0 (other entries give unspecified values: the caller checks).
  // Rows' logs in double lanes: for short rows the scalar libm calls would cost more than the row.
  void (*log_totals)(const SliceStats* stats, int64_t n, double* out);
  void (*math_f32)(MathFunction f, const float* x, int64_t n, float* out);
  void (*math_f64)(MathFunction f, const double* x, int64_t n, double* out);
};

// One accessor per compiled target (csrc/arch/target_*.cpp); each returns a static table.
const KernelTable* kernel_table_baseline();
const KernelTable* kernel_table_avx2();
const KernelTable* kernel_table_avx512();
const KernelTable* kernel_table_neon();

}  // namespace logitloss
