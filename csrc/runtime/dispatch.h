// Which compiled SIMD target runs the kernels.
//
// Targets are ordered baseline < avx2 < avx512 (x86-64) or baseline < neon (aarch64). At import
// the best target that is compiled in, supported by this CPU, and not above the LOGITLOSS_ISA cap
// is chosen; use_isa() (tests, benchmarks) switches to any supported target.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "kernels/kernel_table.h"

namespace logitloss {

struct IsaTarget {
  std::string name;
  const KernelTable* (*table)();
  bool supported;  // by this CPU and OS
};

// Every target this build knows of, in increasing order (compiled or not: see `compiled`).
const std::vector<std::string>& known_isa_names();
// Targets compiled into this extension, in increasing order.
const std::vector<IsaTarget>& compiled_targets();

struct DispatchState {
  std::string cap;          // "" when LOGITLOSS_ISA is unset
  std::string capped_to;    // the best supported target not above the cap
  bool cap_lowered = false; // the cap names a target this CPU cannot run
};

// Chooses the target from the cap (the value of LOGITLOSS_ISA, may be null or empty).
// Throws std::invalid_argument naming the valid names when the cap is unknown.
void initialize_dispatch(const char* cap);
const DispatchState& dispatch_state();

// The kernels in force. Cheap: one atomic load.
const KernelTable& active_kernels();

// A table's kernels for the element type T (float, double, or bfloat16: BFloat16Kernels).
template <class T>
const KernelsOf<T>& kernels_for(const KernelTable& table) {
  if constexpr (std::is_same_v<T, float>) return table.f32;
  else if constexpr (std::is_same_v<T, bfloat16>) return table.bf16;
  else return table.f64;
}
// Switches the active target; throws std::invalid_argument for an unknown or unsupported name.
void set_active_isa(const std::string& name);

}  // namespace logitloss
