#include "bindings/loss_arguments.h"

#include "bindings/output_buffers.h"

#include <string>

namespace logitloss {

LossReduction parse_reduction(py::handle reduction) {
  if (!py::isinstance<py::str>(reduction)) {
    throw py::type_error("`reduction` must be 'none', 'mean' or 'sum', got " + py::repr(reduction).cast<std::string>());
  }
  const std::string name = reduction.cast<std::string>();
  if (name == "mean") return LossReduction::kMean;
  if (name == "sum") return LossReduction::kSum;
  if (name == "none") return LossReduction::kNone;
  throw py::value_error("`reduction` must be 'none', 'mean' or 'sum', got '" + name + "'");
}

GradientTarget gradient_target(const py::array& input, const AxisSizes& shape, const py::dtype& result_dtype,
                               const py::dtype& compute_dtype, py::handle grad_out,
                               std::initializer_list<ReadOperand> others) {
  GradientTarget t;
  if (grad_out.is_none()) {
    const NewArray grad = empty_like_layout(input, compute_dtype);
    t.compute = grad.array;
    t.fresh = grad.fresh;
    return t;
  }
  if (!py::isinstance<py::array>(grad_out)) throw py::type_error("`grad_out` must be a numpy.ndarray");
  py::array out = py::reinterpret_borrow<py::array>(grad_out);
  check_output_array(out, shape, result_dtype, "grad_out");
  t.user = out;
  if (out.dtype().equal(compute_dtype)) {
    t.compute = out;
  } else {  // a temporary, copied into grad_out after the call
    const NewArray temporary = new_c_array(compute_dtype, shape);
    t.compute = temporary.array;
    t.fresh = temporary.fresh;
  }
  if (t.compute.is(out)) {  // the kernels write into the caller's array while reading the operands
    check_no_overlap(out, "grad_out", input, "input", /*alias_allowed=*/true);
    for (const ReadOperand& other : others) {
      if (other.array) check_no_overlap(out, "grad_out", other.array.cast<py::array>(), other.name, false);
    }
  }
  return t;
}

py::object finish_gradient(GradientTarget& t, const py::dtype& result_dtype) {
  if (!t.user) return cast_to(t.compute.cast<py::array>(), result_dtype);
  if (!t.user.is(t.compute)) copy_rounded(t.user.cast<py::array>(), t.compute.cast<py::array>());
  return t.user;
}

py::object reduced_loss_scalar(double value, DType compute, const py::dtype& result_dtype) {
  py::array v(numpy_dtype(compute), AxisSizes{});
  if (compute == DType::kFloat32) *static_cast<float*>(v.mutable_data()) = (float)value;
  else *static_cast<double*>(v.mutable_data()) = value;
  return scalar_if_0d(cast_to(v, result_dtype));
}

}  // namespace logitloss
