// What every driver needs to walk rows: the active kernels for a dtype, unaligned scalar access,
// packing of strided rows into thread-local buffers (and unpacking outputs), and the threaded
// row loop. Baseline code only (included by csrc/ops/*.cpp, never by an ISA target).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/kernel_table.h"
#include "ops/row_layout.h"
#include "runtime/thread_pool.h"

namespace logitloss {
namespace row_access {

// Elements of work per claimed chunk of rows: large enough to amortize the claim, small enough
// that a descheduled thread holds up little (~50 us).
constexpr double kGrainElements = 256.0 * 1024;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

template <class T>
const TypedKernels<T>& kernels_for(const KernelTable& table);
template <>
inline const TypedKernels<float>& kernels_for<float>(const KernelTable& table) { return table.f32; }
template <>
inline const TypedKernels<double>& kernels_for<double>(const KernelTable& table) { return table.f64; }

// Arrays may be unaligned: scalar access goes through memcpy.
template <class T>
T load_scalar(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void store_scalar(char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// Thread-local buffers for rows whose elements are not contiguous (packed before the kernel runs,
// unpacked after).
template <class T>
T* scratch(int slot, int64_t n) {
  thread_local std::vector<T> buffers[3];
  if ((int64_t)buffers[slot].size() < n) buffers[slot].resize(n);
  return buffers[slot].data();
}

template <class T>
const T* row_input(const char* p, int64_t stride, int64_t n, int slot) {
  if (stride == (int64_t)sizeof(T)) return reinterpret_cast<const T*>(p);
  T* buffer = scratch<T>(slot, n);
  for (int64_t i = 0; i < n; ++i) buffer[i] = load_scalar<T>(p + i * stride);
  return buffer;
}

template <class T>
T* row_output(char* p, int64_t stride, int64_t n, int slot) {
  return stride == (int64_t)sizeof(T) ? reinterpret_cast<T*>(p) : scratch<T>(slot, n);
}

template <class T>
void finish_row_output(char* p, int64_t stride, int64_t n, const T* written) {
  if (reinterpret_cast<const char*>(written) == p) return;
  for (int64_t i = 0; i < n; ++i) store_scalar<T>(p + i * stride, written[i]);
}

// Two doubles per chunk of a row, for row_softmax_fused.
inline double* chunk_scratch(int64_t n) {
  thread_local std::vector<double> buffer;
  const size_t size = 2 * (size_t)((n + kRowChunk - 1) / kRowChunk);
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

inline int64_t grain_rows(int64_t length) {
  const double rows = kGrainElements / (double)(length > 0 ? length : 1);
  return rows < 1 ? 1 : (int64_t)rows;
}

// Calls per_row(cursor) for every row, across threads; each row's result depends only on the row.
template <class F>
void for_each_row(const ReductionLayout& layout, F per_row) {
  auto body = [&](int64_t begin, int64_t end) {
    RowCursor cursor(layout, begin);
    for (int64_t r = begin; r < end; ++r, cursor.next()) per_row(r, cursor);
  };
  parallel_for(layout.rows, grain_rows(layout.length), threads_for_work((double)layout.rows * layout.length), body);
}

// A row's statistics allow the vector kernels (finite max, no nan); otherwise edge-case rules.
inline bool regular_row(const SliceStats& s) { return s.max - s.max == 0 && s.others == s.others; }

// log(sum exp(x - max)) of a regular row, keeping precision when the maxima dominate.
inline double log_total(const SliceStats& s) {
  return (s.count == 1 ? 0.0 : std::log(s.count)) + (s.others == 0 ? 0.0 : std::log1p(s.others / s.count));
}

}  // namespace row_access
}  // namespace logitloss
