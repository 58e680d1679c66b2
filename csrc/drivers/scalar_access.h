// Scalar access to array elements, and the special values the edge-case rules return. Arrays may
// be unaligned (a NumPy view of a byte buffer at any offset): every scalar access goes through
// memcpy. Baseline code only (included by csrc/drivers/*.cpp, never by an ISA target).
#pragma once

#include <cstring>
#include <limits>

namespace logitloss {
namespace drivers {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

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

}  // namespace drivers
}  // namespace logitloss
