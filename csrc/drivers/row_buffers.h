// Thread-local buffers that let the kernels see contiguous rows: a strided row is packed into a
// buffer before the kernel runs (row_input) and an output row unpacked after (row_output,
// finish_row_output); plus row_softmax_fused's scratch and staging buffers. A contiguous row is
// used in place. Buffers grow to the longest row a thread has seen and are kept for its next
// call. Baseline code only (included by csrc/drivers/*.cpp, never by an ISA target).
#pragma once

#include <cstdint>
#include <vector>

#include "drivers/scalar_access.h"
#include "kernels/kernel_table.h"

namespace logitloss {
namespace drivers {

// Slots: the operands of one row that may need a buffer at the same time (inputs, weights,
// outputs). Each driver numbers its own; kStagingSlot is reserved for staging_for.
constexpr int kScratchSlots = 8;
constexpr int kStagingSlot = 4;

template <class T>
T* scratch(int slot, int64_t n) {
  thread_local std::vector<T> buffers[kScratchSlots];
  if ((int64_t)buffers[slot].size() < n) buffers[slot].resize(n);
  return buffers[slot].data();
}

// The row at p (elements `stride` bytes apart) as contiguous elements: p itself when contiguous.
template <class T>
const T* row_input(const char* p, int64_t stride, int64_t n, int slot) {
  if (stride == (int64_t)sizeof(T)) return reinterpret_cast<const T*>(p);
  T* buffer = scratch<T>(slot, n);
  for (int64_t i = 0; i < n; ++i) buffer[i] = load_scalar<T>(p + i * stride);
  return buffer;
}

// Where a kernel writes the output row at p: p itself when contiguous, else a buffer that
// finish_row_output copies to p.
template <class T>
T* row_output(char* p, int64_t stride, int64_t n, int slot) {
  return stride == (int64_t)sizeof(T) ? reinterpret_cast<T*>(p) : scratch<T>(slot, n);
}

template <class T>
void finish_row_output(char* p, int64_t stride, int64_t n, const T* written) {
  if (reinterpret_cast<const char*>(written) == p) return;
  for (int64_t i = 0; i < n; ++i) store_scalar<T>(p + i * stride, written[i]);
}

// row_softmax_fused's staging buffer for this thread: n elements when the output is streamed
// (drivers/streaming.h), else null.
template <class T>
T* staging_for(bool stream, int64_t n) {
  return stream ? scratch<T>(kStagingSlot, n) : nullptr;
}

// Two doubles per chunk of a row, for row_softmax_fused.
inline double* chunk_scratch(int64_t n) {
  thread_local std::vector<double> buffer;
  const size_t size = 2 * (size_t)((n + kRowChunk - 1) / kRowChunk);
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

}  // namespace drivers
}  // namespace logitloss
