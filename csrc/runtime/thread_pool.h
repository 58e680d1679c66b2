// The extension's own thread pool.
//
// * Work is cut into chunks that are claimed dynamically (an atomic counter), and the calling
//   thread works too: a worker that the OS deschedules (the machine is shared) delays only the
//   chunk it holds, never a statically assigned share.
// * Results never depend on the thread count: callers give every chunk a fixed meaning (rows, or
//   fixed-size segments) and combine partial results in a fixed order.
// * Fork-safe: a child process forgets the parent's workers and starts its own on first use.
// * One parallel region at a time: a second thread that calls in while the pool is busy runs its
//   work inline rather than waiting.
#pragma once

#include <cstdint>
#include <functional>

namespace logitloss {

// Threads used by kernels (including the caller), in [1, kMaxThreads]. Default: the CPUs this
// process may run on, or LOGITLOSS_NUM_THREADS (a decimal integer >= 1; anything else is ignored
// here, and rejected by the Python package at import).
// Larger counts are capped at kMaxThreads: more threads than that never speed a kernel up and
// would each cost a stack and a start-up (torch spawns whatever it is asked for).
constexpr int kMaxThreads = 1024;
int get_num_threads();
void set_num_threads(int n);  // n < 1 counts as 1, n > kMaxThreads as kMaxThreads

// Runs body(begin, end) over [0, n) in chunks of `grain` items, on at most `max_threads` threads.
void parallel_for(int64_t n, int64_t grain, int max_threads, const std::function<void(int64_t, int64_t)>& body);

// Threads worth using for `work` units (roughly: elements touched), so small calls stay on the
// calling thread.
int threads_for_work(double work);

}  // namespace logitloss
