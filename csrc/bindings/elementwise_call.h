// Builds the ArrayCall for an elementwise kernel: every operand has the call's shape, or (inputs
// such as weights) broadcasts to it by NumPy's rules and takes part with zero strides, so nothing
// is copied to materialize a broadcast.
#pragma once

#include "bindings/arrays.h"

namespace logitloss {

class ElementwiseCall {
 public:
  ElementwiseCall(DType dtype, const AxisSizes& shape) : dtype_(dtype), shape_(shape) {}

  // `a` must broadcast to the call's shape without enlarging it; ValueError naming `name`
  // otherwise. Returns the operand's index.
  int add(const py::array& a, const char* name);

  // Runs `compute(call)` without the GIL.
  template <class F>
  void run(F compute) {
    ArrayCall call{dtype_, make_elementwise_layout(shape_, strides_), bases_, {}};
    py::gil_scoped_release release;
    compute(call);
  }

 private:
  DType dtype_;
  AxisSizes shape_;
  std::vector<py::array> arrays_;  // kept alive for the call
  OperandStrides strides_;
  PerOperand<char*> bases_;
};

// NumPy's broadcasting of `from` to `to` without enlarging it (torch's rule for an in-place
// product): every trailing dim equal or 1, and no more dims than `to`.
bool broadcasts_to(const AxisSizes& from, const AxisSizes& to);

}  // namespace logitloss
