#include "bindings/output_buffers.h"

#include <mutex>
#include <vector>

#if !defined(_WIN32) && __has_include(<sys/mman.h>)
#include <sys/mman.h>  // madvise (Linux, macOS; Windows has none)
#endif

namespace logitloss {
namespace {

constexpr uintptr_t kHugePage = uintptr_t(2) << 20;

struct Buffer {
  PyObject* owner;    // the NumPy array holding the memory (a strong reference)
  char* data;         // inside owner, 2 MiB aligned
  int64_t capacity;   // a multiple of 2 MiB
  bool handed_out;    // used before: its pages are mapped, unless the kernel took them back (a result
                      // dropped unwritten, its call having raised, counts too: streamed into once, slower)
};

struct Pool {
  std::mutex mutex;  // only ever taken with the GIL held, never across its release: fork finds it free
  bool enabled = true;
  std::vector<Buffer*> idle;  // oldest first
};

// Never destroyed: capsules may hand buffers back while the interpreter tears down.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

// Needs the GIL (drops the owner).
void free_buffer(Buffer* b) {
  Py_DECREF(b->owner);
  delete b;
}

void free_buffers(const std::vector<Buffer*>& buffers) {
  for (Buffer* b : buffers) free_buffer(b);
}

// Lets the kernel take an idle buffer's pages back under memory pressure (Linux, macOS). Whole huge
// pages only: a partial range would split them. Where there is no MADV_FREE (Windows) an idle buffer
// keeps its pages until it is reused, dropped as a third idle buffer, or released.
void advise_idle(const Buffer* b) {
#if !defined(_WIN32) && defined(MADV_FREE)
  madvise(b->data, (size_t)b->capacity, MADV_FREE);
#else
  (void)b;
#endif
}

// The capsule's destructor: the last array using the buffer is gone (called with the GIL). The
// advice comes before the buffer is listed idle, where another thread may take it and write.
void return_buffer(void* p) {
  Buffer* b = static_cast<Buffer*>(p);
  if (!output_reuse()) {
    free_buffer(b);
    return;
  }
  b->handed_out = true;
  advise_idle(b);
  std::vector<Buffer*> dropped;
  {
    Pool& s = pool();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.idle.push_back(b);
    while (s.idle.size() > (size_t)kIdleBuffers) {
      dropped.push_back(s.idle.front());
      s.idle.erase(s.idle.begin());
    }
  }
  free_buffers(dropped);
}

// The smallest idle buffer that holds `bytes` and is at most an eighth larger (a much larger one
// would keep memory the result never uses), taken out of the idle list; null if none.
Buffer* take_idle(int64_t bytes) {
  Pool& s = pool();
  std::lock_guard<std::mutex> lock(s.mutex);
  size_t best = s.idle.size();
  for (size_t i = 0; i < s.idle.size(); ++i) {
    const int64_t c = s.idle[i]->capacity;
    if (c >= bytes && c - bytes <= bytes / 8 && (best == s.idle.size() || c < s.idle[best]->capacity)) best = i;
  }
  if (best == s.idle.size()) return nullptr;
  Buffer* b = s.idle[best];
  s.idle.erase(s.idle.begin() + (std::ptrdiff_t)best);
  return b;
}

Buffer* new_buffer(int64_t bytes) {
  const int64_t capacity = (int64_t)(((uintptr_t)bytes + kHugePage - 1) / kHugePage * kHugePage);
  py::array owner(py::dtype("uint8"), std::vector<int64_t>{capacity + (int64_t)kHugePage});
  const uintptr_t start = reinterpret_cast<uintptr_t>(owner.mutable_data());
  char* data = reinterpret_cast<char*>((start + kHugePage - 1) / kHugePage * kHugePage);
  return new Buffer{owner.release().ptr(), data, capacity, false};
}

}  // namespace

NewArray new_c_array(const py::dtype& dt, const AxisSizes& shape) {
  int64_t bytes = dt.itemsize();
  for (int64_t n : shape) bytes *= n;
  if (bytes < kReusableBytes || !output_reuse()) return {py::array(dt, shape), true};
  Buffer* b = take_idle(bytes);
  if (!b) b = new_buffer(bytes);
  const bool fresh = !b->handed_out;
  py::capsule base;
  try {
    base = py::capsule(b, &return_buffer);
  } catch (...) {
    free_buffer(b);
    throw;
  }
  return {py::array(dt, std::vector<int64_t>(shape.begin(), shape.end()), b->data, base), fresh};  // C strides
}

void set_output_reuse(bool enabled) {
  Pool& s = pool();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.enabled = enabled;
}

bool output_reuse() {
  Pool& s = pool();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.enabled;
}

IdleBuffers idle_buffers() {
  Pool& s = pool();
  std::lock_guard<std::mutex> lock(s.mutex);
  IdleBuffers r{(int64_t)s.idle.size(), 0};
  for (const Buffer* b : s.idle) r.bytes += b->capacity;
  return r;
}

int64_t release_idle_buffers() {
  std::vector<Buffer*> idle;
  {
    Pool& s = pool();
    std::lock_guard<std::mutex> lock(s.mutex);
    idle.swap(s.idle);
  }
  int64_t bytes = 0;
  for (const Buffer* b : idle) bytes += b->capacity;
  free_buffers(idle);
  return bytes;
}

}  // namespace logitloss
