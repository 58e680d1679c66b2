// Scalar access to array elements, and the special values the edge-case rules return. Arrays may
// be unaligned (a NumPy view of a byte buffer at any offset): every scalar access goes through
// memcpy. Baseline code only (included by csrc/drivers/*.cpp, never by an ISA target).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/kernel_table.h"

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

// An element as double (bfloat16 widened exactly).
template <class S>
double load_value(const char* p) {
  if constexpr (std::is_same_v<S, bfloat16>) return (double)bfloat16_to_float(load_scalar<bfloat16>(p));
  else return (double)load_scalar<S>(p);
}

// double rounded once to bfloat16: to float rounding to odd (toward zero, the last bit set when
// inexact), then to bfloat16 to nearest even, which is then the correctly rounded result (float
// keeps more than two bits beyond bfloat16's). Beyond the range: +-inf; nan stays nan.
inline bfloat16 double_to_bfloat16(double d) {
  float f = (float)d;
  if ((double)f != d && d == d) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    if (std::fabs((double)f) > std::fabs(d)) bits -= 1;  // toward zero (inf becomes the largest float)
    bits |= 1u;
    std::memcpy(&f, &bits, sizeof f);
  }
  return float_to_bfloat16(f);
}

// A double as storage type S, rounded once.
template <class S>
S storage_value(double v) {
  if constexpr (std::is_same_v<S, bfloat16>) return double_to_bfloat16(v);
  else return (S)v;
}

}  // namespace drivers
}  // namespace logitloss
