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
  return output_target(input, shape, result_dtype, compute_dtype, grad_out, "grad_out", true, others);
}

GradientTarget output_target(const py::array& input, const AxisSizes& shape, const py::dtype& result_dtype,
                             const py::dtype& compute_dtype, py::handle out_obj, const char* name, bool input_alias_allowed,
                             std::initializer_list<ReadOperand> others) {
  GradientTarget t;
  if (out_obj.is_none()) {
    const NewArray grad = empty_like_layout(input, compute_dtype);
    t.compute = grad.array;
    t.fresh = grad.fresh;
    return t;
  }
  if (!py::isinstance<py::array>(out_obj)) throw py::type_error("`" + std::string(name) + "` must be a numpy.ndarray");
  py::array out = py::reinterpret_borrow<py::array>(out_obj);
  check_output_array(out, shape, result_dtype, name);
  t.user = out;
  if (out.dtype().equal(compute_dtype)) {
    t.compute = out;
  } else {  // a temporary, copied into grad_out after the call
    const NewArray temporary = new_c_array(compute_dtype, shape);
    t.compute = temporary.array;
    t.fresh = temporary.fresh;
  }
  if (t.compute.is(out)) {  // the kernels write into the caller's array while reading the operands
    check_no_overlap(out, name, input, "input", input_alias_allowed);
    for (const ReadOperand& other : others) {
      if (other.array) check_no_overlap(out, name, other.array.cast<py::array>(), other.name, false);
    }
  }
  return t;
}

GradientTarget hessian_target(py::handle input_obj, const py::array& input, const AxisSizes& shape,
                              const py::dtype& result_dtype, const py::dtype& compute_dtype, py::handle hessian_out,
                              const GradientTarget& grad, std::initializer_list<ReadOperand> others) {
  GradientTarget t = output_target(input, shape, result_dtype, compute_dtype, hessian_out, "hessian_out", false, others);
  if (!t.user) return t;
  // Also where the Hessian goes through a temporary: copied into an alias of the input or of the
  // gradient afterwards, it would overwrite them.
  // (output_target checked `input` already where the kernels write hessian_out itself.)
  const py::array out = t.user.cast<py::array>();
  const bool input_checked = t.compute.is(out);
  if (py::isinstance<py::array>(input_obj) && !(input_checked && input.is(input_obj))) {
    check_no_overlap(out, "hessian_out", py::reinterpret_borrow<py::array>(input_obj), "input", false);
  }
  if (!input_checked) check_no_overlap(out, "hessian_out", input, "input", false);
  if (grad.user) check_no_overlap(out, "hessian_out", grad.user.cast<py::array>(), "grad_out", false);
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
