#include "runtime/dispatch.h"

#include <atomic>
#include <stdexcept>

#include "runtime/cpu_features.h"

namespace logitloss {
namespace {

std::atomic<const KernelTable*> g_active{nullptr};
DispatchState g_state;

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

int rank_of(const std::string& name) {
  const auto& names = known_isa_names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return (int)i;
  }
  return -1;
}

}  // namespace

const std::vector<std::string>& known_isa_names() {
  static const std::vector<std::string> names = {"baseline", "neon", "avx2", "avx512"};
  return names;
}

const std::vector<IsaTarget>& compiled_targets() {
  static const std::vector<IsaTarget> targets = [] {
    const CpuFeatures& cpu = cpu_features();
    std::vector<IsaTarget> t;
    t.push_back({"baseline", kernel_table_baseline, true});
#if defined(LOGITLOSS_HAVE_NEON)
    t.push_back({"neon", kernel_table_neon, cpu.neon});
#endif
#if defined(LOGITLOSS_HAVE_AVX2)
    t.push_back({"avx2", kernel_table_avx2, cpu.avx2_fma});
#endif
#if defined(LOGITLOSS_HAVE_AVX512)
    t.push_back({"avx512", kernel_table_avx512, cpu.avx512});
#endif
    (void)cpu;
    return t;
  }();
  return targets;
}

void initialize_dispatch(const char* cap) {
  std::string cap_name = cap ? cap : "";
  int cap_rank = (int)known_isa_names().size();
  if (!cap_name.empty()) {
    cap_rank = rank_of(cap_name);
    if (cap_rank < 0) {
      throw std::invalid_argument("LOGITLOSS_ISA='" + cap_name + "' is not a known target; valid names: " +
                                  join_names(known_isa_names()));
    }
  }
  const IsaTarget* best = nullptr;
  for (const auto& t : compiled_targets()) {
    if (t.supported && rank_of(t.name) <= cap_rank) best = &t;
  }
  g_state.cap = cap_name;
  g_state.capped_to = best->name;
  g_state.cap_lowered = !cap_name.empty() && cap_name != best->name;
  g_active.store(best->table(), std::memory_order_release);
}

const DispatchState& dispatch_state() { return g_state; }

const KernelTable& active_kernels() {
  const KernelTable* table = g_active.load(std::memory_order_acquire);
  if (!table) {
    initialize_dispatch(nullptr);
    table = g_active.load(std::memory_order_acquire);
  }
  return *table;
}

void set_active_isa(const std::string& name) {
  for (const auto& t : compiled_targets()) {
    if (t.name != name) continue;
    if (!t.supported) throw std::invalid_argument("ISA target '" + name + "' is not supported by this CPU");
    g_active.store(t.table(), std::memory_order_release);
    return;
  }
  std::vector<std::string> compiled;
  for (const auto& t : compiled_targets()) compiled.push_back(t.name);
  throw std::invalid_argument("unknown ISA target '" + name + "'; compiled targets: " + join_names(compiled));
}

}  // namespace logitloss
