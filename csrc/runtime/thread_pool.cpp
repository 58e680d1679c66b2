#include "runtime/thread_pool.h"

#if defined(_WIN32)
#ifndef NOMINMAX
#define NOMINMAX  // <windows.h> would otherwise define min and max as macros
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>  // GetActiveProcessorCount, GetProcessAffinityMask
#else
#include <pthread.h>  // pthread_atfork
#endif
#if defined(__linux__)
#include <sched.h>  // sched_getaffinity
#endif

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace logitloss {
namespace {

// Below this much work per thread, waking a thread costs more than it saves (~10 us).
constexpr double kMinWorkPerThread = 64.0 * 1024;

int capped(long long n) { return n < 1 ? 1 : n > kMaxThreads ? kMaxThreads : (int)n; }

// LOGITLOSS_NUM_THREADS as a decimal integer >= 1 (surrounding white space allowed), or 0 if it
// is unset or anything else (no atoi: its overflow is undefined behaviour).
long long threads_from_environment() {
  const char* env = std::getenv("LOGITLOSS_NUM_THREADS");
  if (!env) return 0;
  const char* p = env;
  while (*p == ' ' || *p == '\t') ++p;
  long long n = 0;
  bool digits = false;
  for (; *p >= '0' && *p <= '9'; ++p) {
    digits = true;
    if (n <= kMaxThreads) n = n * 10 + (*p - '0');  // beyond the cap, the exact value no longer matters
  }
  while (*p == ' ' || *p == '\t') ++p;
  return digits && *p == '\0' && n >= 1 ? n : 0;
}

// The CPUs this process may run on. Linux: its affinity mask (taskset, cgroup cpusets). Windows:
// the process's affinity mask when the machine has one processor group (the mask cannot describe
// more), else every active processor of every group. Elsewhere (macOS has no process affinity):
// the online CPUs, which std::thread::hardware_concurrency() reads (sysconf or sysctl).
int default_num_threads() {
  if (const long long n = threads_from_environment()) return capped(n);
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return capped(CPU_COUNT(&set));
#elif defined(_WIN32)
  DWORD_PTR process_mask = 0, system_mask = 0;
  if (GetActiveProcessorGroupCount() == 1 && GetProcessAffinityMask(GetCurrentProcess(), &process_mask, &system_mask)) {
    int count = 0;
    for (; process_mask; process_mask &= process_mask - 1) ++count;
    return capped(count);
  }
  if (const DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS)) return capped(n);
#endif
  unsigned n = std::thread::hardware_concurrency();
  return capped(n);
}

struct Job {
  const std::function<void(int64_t, int64_t)>* body = nullptr;
  int64_t n = 0;
  int64_t grain = 1;
  int64_t chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

// Runs chunks of `job` until none is left; returns how many this thread ran.
void work_on(Job& job) {
  for (;;) {
    int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.chunks) return;
    int64_t begin = c * job.grain;
    int64_t end = begin + job.grain < job.n ? begin + job.grain : job.n;
    (*job.body)(begin, end);
    job.done.fetch_add(1, std::memory_order_acq_rel);
  }
}

class Pool {
 public:
  ~Pool() = delete;  // lives for the process; a forked child abandons it (see after_fork_in_child)

  void run(int64_t n, int64_t grain, int threads, const std::function<void(int64_t, int64_t)>& body) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {  // another thread's region is running: do ours inline
      body(0, n);
      return;
    }
    ensure_workers(threads - 1);
    Job job;
    job.body = &body;
    job.n = n;
    job.grain = grain;
    job.chunks = (n + grain - 1) / grain;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      helpers_wanted_ = threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    work_on(job);
    // Wait for chunks other threads still hold: spin briefly, then sleep.
    for (int spin = 0; job.done.load(std::memory_order_acquire) < job.chunks; ++spin) {
      if (spin < 2000) {
        std::this_thread::yield();
      } else {
        std::unique_lock<std::mutex> lock(mutex_);
        finished_.wait(lock, [&] { return job.done.load(std::memory_order_acquire) >= job.chunks; });
      }
    }
    // No worker may still reference `job` when it goes out of scope.
    std::unique_lock<std::mutex> lock(mutex_);
    job_ = nullptr;
    finished_.wait(lock, [&] { return active_ == 0; });
  }

 private:
  void ensure_workers(int count) {
    while ((int)workers_ < count) {
      std::thread(&Pool::worker_loop, this).detach();
      ++workers_;
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (!job_ || helpers_wanted_ <= 0) continue;
      --helpers_wanted_;
      Job* job = job_;
      ++active_;
      lock.unlock();
      work_on(*job);
      lock.lock();
      --active_;
      finished_.notify_all();
    }
  }

  std::mutex busy_;  // held for a whole parallel region
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  int helpers_wanted_ = 0;
  int active_ = 0;
  size_t workers_ = 0;
};

std::atomic<Pool*> g_pool{nullptr};
std::atomic<int> g_num_threads{0};
std::mutex g_pool_create;

#if !defined(_WIN32)
void after_fork_in_child() {
  // The child has only the forking thread: the parent's workers do not exist here and the pool's
  // mutexes may be held by them. Abandon it (leak) and build a fresh one on first use.
  new (&g_pool_create) std::mutex();
  g_pool.store(nullptr);
}
#endif

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return *p;
  std::lock_guard<std::mutex> lock(g_pool_create);
  p = g_pool.load(std::memory_order_acquire);
  if (!p) {
#if !defined(_WIN32)  // Windows has no fork: a new process starts without the parent's threads
    static std::once_flag atfork_once;
    std::call_once(atfork_once, [] { pthread_atfork(nullptr, nullptr, after_fork_in_child); });
#endif
    p = new Pool();
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_num_threads();
    g_num_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) { g_num_threads.store(capped(n), std::memory_order_relaxed); }

int threads_for_work(double work) {
  int by_work = (int)(work / kMinWorkPerThread);
  int n = get_num_threads();
  return by_work < 1 ? 1 : (by_work < n ? by_work : n);
}

void parallel_for(int64_t n, int64_t grain, int max_threads, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t chunks = (n + grain - 1) / grain;
  int threads = max_threads < get_num_threads() ? max_threads : get_num_threads();
  if (threads > chunks) threads = (int)chunks;
  if (threads <= 1) {
    body(0, n);
    return;
  }
  pool().run(n, grain, threads, body);
}

}  // namespace logitloss
