// Large results in reusable buffers: the memory of results the caller has dropped is handed out
// again instead of fresh pages.
//
// Why: a block of 32 MiB or more comes fresh from the OS on every allocation (glibc maps it anew
// and unmaps it on free), and the first store to each page faults while the kernel zeroes it: 36 of
// the 93 ms of a (4096, 32000) float32 softmax (docs/performance-notes.md), several times more on a
// VM whose host takes freed memory back. With reuse the call costs what it costs into an `out=`
// array.
//
// How: a result is an array over the buffer whose base is a capsule holding the buffer. Every view
// of it keeps it (or an array that keeps it) alive, so the capsule's destructor runs, and the buffer
// turns idle, exactly when the last array using its memory is gone: nothing can still see an idle
// buffer. At most kIdleBuffers idle buffers are kept, the most recently dropped ones, with their
// pages marked MADV_FREE (Linux, macOS): under memory pressure the kernel takes them back (no
// swapping); otherwise they are still mapped when reused. Windows has no such advice: idle buffers
// keep their pages until release_idle_buffers() frees them. The buffers themselves are NumPy
// arrays (NumPy's allocator and its huge-page advice), their data aligned to 2 MiB.
#pragma once

#include <cstdint>

#include "bindings/arrays.h"

namespace logitloss {

// Results at least this large are reusable (glibc's largest threshold for mapping a block anew). A
// buffer serves a result only if that leaves at most an eighth of the result's size unused.
constexpr int64_t kReusableBytes = int64_t(32) << 20;
constexpr int kIdleBuffers = 2;

// An uninitialized C-ordered array of `dt` and `shape`: a reused buffer where reuse is on and the
// array is at least kReusableBytes, else NumPy's own.
NewArray new_c_array(const py::dtype& dt, const AxisSizes& shape);

// Off: new results are NumPy's own, and buffers in use are freed when dropped; the idle ones stay
// (release_idle_buffers frees them).
void set_output_reuse(bool enabled);
bool output_reuse();

struct IdleBuffers {
  int64_t count;
  int64_t bytes;
};
IdleBuffers idle_buffers();
// Frees the idle buffers now; returns their bytes.
int64_t release_idle_buffers();

}  // namespace logitloss
