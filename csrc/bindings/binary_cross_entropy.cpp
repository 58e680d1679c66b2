// Python entry points of binary_cross_entropy_with_logits and its backward: torch's argument rules
// (target of the input's shape, weight and pos_weight broadcast to it, reductions, result dtype),
// then the driver in csrc/drivers/binary_cross_entropy.cpp without the GIL.
#include <string>

#include "bindings/arrays.h"
#include "bindings/elementwise_call.h"
#include "bindings/loss_arguments.h"
#include "drivers/binary_cross_entropy.h"

namespace logitloss {
namespace {

// Everything a call needs, validated, arrays in the compute dtype. (py::object members: a
// default-constructed py::array would allocate an array.)
struct BinaryCrossEntropyArgs {
  py::object input, target, weight, pos_weight;
  py::dtype result_dtype, compute_dtype;
  DType compute;
  AxisSizes shape;
  LossReduction reduction;
};

// A weight-like argument: real numbers (bool included) in the compute dtype, a cast of the
// argument as given (ElementwiseCall::add broadcasts it to the input's shape, never copying).
py::object weight_operand(py::handle obj, const char* name, const BinaryCrossEntropyArgs& a) {
  if (obj.is_none()) return py::object();
  return cast_to(as_numeric_array(obj, name), a.compute_dtype);
}

BinaryCrossEntropyArgs parse_arguments(py::handle input_obj, py::handle target_obj, py::handle weight_obj,
                                       py::handle reduction_obj, py::handle pos_weight_obj) {
  BinaryCrossEntropyArgs a;
  a.reduction = parse_reduction(reduction_obj);
  py::array input = as_numeric_array(input_obj, "input");
  if (!is_floating(input.dtype())) {
    throw py::type_error("`input` must hold floating-point logits, got dtype " + py::str(input.dtype()).cast<std::string>());
  }
  py::array target = as_numeric_array(target_obj, "target");
  a.shape = shape_of(input);
  if (shape_of(target) != a.shape) {
    throw py::value_error("`target` has shape " + py::str(target.attr("shape")).cast<std::string>() +
                          "; it must have the input's shape " + py::str(as_tuple(a.shape)).cast<std::string>() +
                          " (as torch: Target size must be the same as input size)");
  }
  // torch's promotion: a floating target joins the result type; integer and bool targets do not.
  a.result_dtype = floating_dtype(is_floating(target.dtype()) ? floating_result_type(input, target) : input.dtype());
  a.compute = compute_dtype(a.result_dtype);
  a.compute_dtype = numpy_dtype(a.compute);
  a.input = cast_to(input, a.compute_dtype);
  a.target = cast_to(target, a.compute_dtype);
  a.weight = weight_operand(weight_obj, "weight", a);
  a.pos_weight = weight_operand(pos_weight_obj, "pos_weight", a);
  return a;
}

// Adds the arguments' operands to a call.
BinaryCrossEntropyOperands add_operands(ElementwiseCall& call, const BinaryCrossEntropyArgs& a) {
  BinaryCrossEntropyOperands ops;
  ops.reduction = a.reduction;
  ops.input = call.add(a.input.cast<py::array>(), "input");
  ops.target = call.add(a.target.cast<py::array>(), "target");
  if (a.weight) ops.weight = call.add(a.weight.cast<py::array>(), "weight");
  if (a.pos_weight) ops.pos_weight = call.add(a.pos_weight.cast<py::array>(), "pos_weight");
  return ops;
}

py::object binary_cross_entropy_with_logits(py::handle input, py::handle target, py::handle weight,
                                            py::handle reduction, py::handle pos_weight, py::handle return_grad_obj,
                                            py::handle grad_out, py::handle return_hessian_obj, py::handle hessian_out) {
  BinaryCrossEntropyArgs a = parse_arguments(input, target, weight, reduction, pos_weight);
  const bool return_hessian = as_flag(return_hessian_obj, "return_hessian") || !hessian_out.is_none();
  const bool return_grad = as_flag(return_grad_obj, "return_grad") || !grad_out.is_none() || return_hessian;
  GradientTarget grad, hessian;
  if (return_grad) {
    grad = gradient_target(a.input.cast<py::array>(), a.shape, a.result_dtype, a.compute_dtype, grad_out,
                           {{a.target, "target"}, {a.weight, "weight"}, {a.pos_weight, "pos_weight"}});
  }
  if (return_hessian) {
    hessian = hessian_target(input, a.input.cast<py::array>(), a.shape, a.result_dtype, a.compute_dtype, hessian_out, grad,
                             {{a.target, "target"}, {a.weight, "weight"}, {a.pos_weight, "pos_weight"}});
  }
  const bool per_element = a.reduction == LossReduction::kNone;
  py::object loss_array = per_element ? py::object(empty_like_layout(a.input.cast<py::array>(), a.compute_dtype).array) : py::object();

  ElementwiseCall call(a.compute, a.shape);
  BinaryCrossEntropyOperands ops = add_operands(call, a);
  if (per_element) ops.loss = call.add(loss_array.cast<py::array>(), "loss");
  if (return_grad) ops.grad = call.add(grad.compute.cast<py::array>(), "grad_out");
  if (return_hessian) ops.hessian = call.add(hessian.compute.cast<py::array>(), "hessian_out");
  double reduced = 0.0;
  call.run([&](const ArrayCall& c) { reduced = run_binary_cross_entropy(c, ops); });

  py::object loss = per_element ? scalar_if_0d(cast_to(loss_array.cast<py::array>(), a.result_dtype))
                                : reduced_loss_scalar(reduced, a.compute, a.result_dtype);
  if (!return_grad) return loss;
  if (!return_hessian) return py::make_tuple(loss, finish_gradient(grad, a.result_dtype));
  py::object grad_result = finish_gradient(grad, a.result_dtype);
  return py::make_tuple(loss, grad_result, finish_gradient(hessian, a.result_dtype));
}

py::object binary_cross_entropy_with_logits_backward(py::handle grad_output, py::handle input, py::handle target,
                                                     py::handle weight, py::handle reduction, py::handle pos_weight) {
  BinaryCrossEntropyArgs a = parse_arguments(input, target, weight, reduction, pos_weight);
  py::array upstream = cast_to(as_numeric_array(grad_output, "grad_output"), a.compute_dtype);
  GradientTarget grad = gradient_target(a.input.cast<py::array>(), a.shape, a.result_dtype, a.compute_dtype, py::none(), {});

  ElementwiseCall call(a.compute, a.shape);
  BinaryCrossEntropyOperands ops = add_operands(call, a);
  ops.gradient_only = true;
  ops.grad = call.add(grad.compute.cast<py::array>(), "grad");
  if (a.reduction == LossReduction::kNone) {
    ops.upstream = call.add(upstream, "grad_output");  // the loss's shape, or broadcasting to it
  } else {
    if (upstream.size() != 1 || upstream.ndim() > 1) {
      throw py::value_error("`grad_output` must be a scalar for reduction='" + reduction.cast<std::string>() +
                            "', got shape " + py::str(upstream.attr("shape")).cast<std::string>());
    }
    ops.upstream_scalar = upstream.attr("item")().cast<double>();
  }
  call.run([&](const ArrayCall& c) { run_binary_cross_entropy(c, ops); });
  return finish_gradient(grad, a.result_dtype);
}

}  // namespace

void bind_binary_cross_entropy(py::module_& m) {
  // Positional only: the public signatures and documentation are python/logitloss/_binary_cross_entropy.py.
  m.def("binary_cross_entropy_with_logits", &binary_cross_entropy_with_logits);
  m.def("binary_cross_entropy_with_logits_backward", &binary_cross_entropy_with_logits_backward);
}

}  // namespace logitloss
