// Builds the ArrayCall for a reduction over some axes of arrays that share one (broadcast) shape:
// each operand is an array of that shape, or of the shape with 1 on axes it does not vary along
// (an upstream gradient in keepdims form), or a per-row output of the kept axes' shape; the
// latter two take part with stride 0 along the axes they lack. Operands whose
// reduced axes cannot be walked with one stride are replaced by copies with those axes last
// (inputs), or computed into such a copy and written back (outputs).
#pragma once

#include "bindings/arrays.h"

namespace logitloss {

class ReductionCall {
 public:
  ReductionCall(DType dtype, const AxisSizes& shape, const AxisFlags& reduced);

  int add_input(const py::array& a);
  // fresh: the bindings allocated `a` for this call and its pages were never written (NewArray).
  int add_output(const py::array& a, bool fresh);
  // Operands with one element per row, shaped as the kept axes (no keepdims).
  int add_per_row_input(const py::array& a);
  int add_per_row_output(const py::array& a);

  // Runs `compute(call)` without the GIL, then writes back outputs that needed a temporary.
  template <class F>
  void run(F compute) {
    ArrayCall call = finish();
    {
      py::gil_scoped_release release;
      compute(call);
    }
    write_back();
  }

 private:
  struct Operand {
    py::array array;       // what the kernels see
    py::object write_back;  // the caller's array, when `array` is a temporary (else null)
    bool output;
    bool per_row;
    bool fresh;
  };
  AxisSizes operand_strides(const Operand& op) const;
  py::array permuted_copy(const py::array& a, bool copy_data) const;
  ArrayCall finish();
  void write_back();

  DType dtype_;
  AxisSizes shape_;
  AxisFlags reduced_;
  std::vector<Operand> operands_;  // reserved for kInlineOperands (one allocation)
};

}  // namespace logitloss
