// Writing a row of results: map_row stores f(i, count) -- the vector of results for positions
// i .. i + count - 1 -- at every position of a contiguous output, masked at the tail (never a
// scalar tail with other arithmetic), optionally with streaming (non-temporal) stores.
//
// Contract: out[0..n) contiguous, n >= 0, any alignment of the element type. f is called once
// per vector, in order. kStream: the caller ends with streaming_fence() before handing the
// output back. Requires simd/vector-inl.h (arch/target.inc includes it first).
#pragma once

// kStream: for an output far larger than cache, whole vectors at vector-aligned addresses are
// streamed (store_streaming: no read-for-ownership, a third less memory traffic), the unaligned
// head and the tail stored plainly (NumPy's large arrays start 16 bytes past a page boundary, so
// rows rarely align).
template <class T, bool kStream = false, class F>
inline void map_row(int64_t n, T* out, F f) {
  constexpr int kLanes = Vec<T>::kLanes;
  int64_t i = 0;
  if constexpr (kStream) {
    constexpr uintptr_t kBytes = kLanes * sizeof(T);  // what one store writes (bfloat16: half a register)
    const uintptr_t address = reinterpret_cast<uintptr_t>(out);
    if (address % sizeof(T) == 0) {
      i = (int64_t)((kBytes - address % kBytes) % kBytes / sizeof(T));
      if (i > n) i = n;
      if (i > 0) store_partial(out, f(0, i), i);
      for (; i + kLanes <= n; i += kLanes) store_streaming(out + i, f(i, kLanes));
    }
  }
  for (; i + kLanes <= n; i += kLanes) store(out + i, f(i, kLanes));
  if (i < n) store_partial(out + i, f(i, n - i), n - i);
}

// Calls body(mode), mode a std::bool_constant of `stream`: the store choice made once, outside
// the loops (see map_row).
template <class Body>
inline void with_stream_mode(bool stream, Body body) {
  if (stream) body(std::true_type{}); else body(std::false_type{});
}
