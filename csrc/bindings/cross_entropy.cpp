// Python entry points of cross_entropy and cross_entropy_backward: torch's argument rules
// (class axis 1, index or probability targets, weight, ignore_index, reduction, label smoothing),
// then the driver in csrc/drivers/cross_entropy.cpp without the GIL.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "bindings/arrays.h"
#include "bindings/loss_arguments.h"
#include "bindings/reduction_call.h"
#include "drivers/cross_entropy.h"

namespace logitloss {
namespace {

// Everything a cross-entropy call needs, validated: arrays in the compute dtype, the layout
// (class axis reduced) and the driver's options.
// (Array members are py::object: a default-constructed py::array would allocate an array.)
struct CrossEntropyArgs {
  py::object input, target, weight;
  py::dtype result_dtype, compute_dtype;
  DType compute;
  // bfloat16 logits: `input` stays bfloat16 until settle_input_dtype decides whether the kernels
  // read it in registers (call dtype kBFloat16, the gradient written as bfloat16) or through a
  // float32 copy (the options the bfloat16 kernels do not take).
  bool bfloat16_input = false;
  DType call_dtype;
  py::dtype gradient_dtype;  // what the kernels write the gradient in
  AxisSizes shape, kept_shape;
  AxisFlags reduced;
  CrossEntropyOperands ops;
};

CrossEntropyArgs parse_arguments(py::handle input_obj, py::handle target_obj, py::handle weight_obj,
                                 py::handle ignore_index_obj, py::handle reduction_obj, py::handle label_smoothing_obj) {
  CrossEntropyArgs a;
  a.ops.reduction = parse_reduction(reduction_obj);
  const auto bad_label_smoothing = [&] {
    return py::type_error("`label_smoothing` must be a real number in [0, 1], got " +
                          py::repr(label_smoothing_obj).cast<std::string>());
  };
  double label_smoothing;
  if (PyFloat_CheckExact(label_smoothing_obj.ptr())) {  // the usual float: no attribute lookups
    label_smoothing = PyFloat_AS_DOUBLE(label_smoothing_obj.ptr());
  } else {
    if (py::isinstance<py::bool_>(label_smoothing_obj) || !py::hasattr(label_smoothing_obj, "__float__")) {
      throw bad_label_smoothing();
    }
    try {  // an array of several elements has __float__ too, and raises in it
      label_smoothing = py::reinterpret_borrow<py::object>(label_smoothing_obj).attr("__float__")().cast<double>();
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError) && !e.matches(PyExc_ValueError)) throw;
      throw bad_label_smoothing();
    }
  }
  py::array input = as_numeric_array(input_obj, "input");
  if (!is_floating(input.dtype())) {
    throw py::type_error("`input` must hold floating-point logits, got dtype " + py::str(input.dtype()).cast<std::string>());
  }
  if (input.ndim() == 0) throw py::value_error("`input` must have at least 1 dimension (the classes), got a 0-d array");
  a.result_dtype = floating_dtype(input.dtype());
  a.compute = compute_dtype(a.result_dtype);
  a.compute_dtype = numpy_dtype(a.compute);
  a.bfloat16_input = is_bfloat16(input.dtype());
  a.input = a.bfloat16_input ? py::object(input) : py::object(cast_to(input, a.compute_dtype));
  a.call_dtype = a.compute;
  a.gradient_dtype = a.compute_dtype;
  a.shape = shape_of(input);
  const int class_axis = input.ndim() == 1 ? 0 : 1;
  const int64_t classes = a.shape[class_axis];
  a.reduced.assign(a.shape.size(), false);
  a.reduced[class_axis] = true;
  for (size_t i = 0; i < a.shape.size(); ++i) {
    if ((int)i != class_axis) a.kept_shape.push_back(a.shape[i]);
  }

  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    throw py::value_error("`label_smoothing` must be in [0, 1], got " + std::to_string(label_smoothing));
  }
  a.ops.label_smoothing = label_smoothing;
  a.ops.ignore_index = as_int64(ignore_index_obj, "ignore_index");

  py::array target = as_numeric_array(target_obj, "target");
  a.ops.probability_targets = shape_of(target) == a.shape;
  if (a.ops.probability_targets) {
    if (!is_floating(target.dtype())) {
      throw py::type_error("`target` has the input's shape, so it holds class probabilities and must be floating, got dtype " +
                           py::str(target.dtype()).cast<std::string>());
    }
    if (a.ops.ignore_index >= 0) {
      throw py::value_error("`ignore_index` (" + std::to_string(a.ops.ignore_index) +
                            ") is not supported with probability targets (as torch)");
    }
    a.target = cast_to(target, a.compute_dtype);
  } else {
    if (shape_of(target) != a.kept_shape) {
      throw py::value_error("`target` has shape " + py::str(target.attr("shape")).cast<std::string>() +
                            "; expected class indices of shape " + py::str(as_tuple(a.kept_shape)).cast<std::string>() +
                            " or probabilities of the input's shape " + py::str(as_tuple(a.shape)).cast<std::string>());
    }
    if (target.dtype().kind() != 'i' && target.dtype().kind() != 'u') {
      throw py::type_error("`target` holds class indices and must be an integer array, got dtype " +
                           py::str(target.dtype()).cast<std::string>());
    }
    // uint64 indices above 2^63 - 1 would wrap to negative int64 (2^64 - 100 to -100, the default
    // ignore_index, silently ignored): out of bounds for any input, reported with their value.
    if (target.dtype().kind() == 'u' && target.dtype().itemsize() == 8 && target.size() > 0) {
      const py::object largest = target.attr("max")();
      if (largest.cast<uint64_t>() > (uint64_t)std::numeric_limits<int64_t>::max()) {
        throw py::index_error("`target`: Target " + py::str(largest).cast<std::string>() + " is out of bounds (classes 0.." +
                              std::to_string(classes - 1) + ")");
      }
    }
    a.target = cast_to(target, py::dtype::of<int64_t>());
  }

  if (!weight_obj.is_none()) {
    py::array weight = as_numeric_array(weight_obj, "weight");
    if (!is_floating(weight.dtype())) {
      throw py::type_error("`weight` must be floating, got dtype " + py::str(weight.dtype()).cast<std::string>());
    }
    if (weight.ndim() != 1 || weight.shape(0) != classes) {
      throw py::value_error("`weight` must have shape (" + std::to_string(classes) + ",) (one per class), got " +
                            py::str(weight.attr("shape")).cast<std::string>());
    }
    // The drivers index weight[] directly: contiguous and aligned (ascontiguousarray alone keeps
    // a misaligned buffer, found by the fuzzer under UBSan).
    a.weight = py::reinterpret_steal<py::array>(
        py::module_::import("numpy")
            .attr("require")(weight, a.compute_dtype, py::make_tuple("C_CONTIGUOUS", "ALIGNED"))
            .release());
    a.ops.weight = a.weight.cast<py::array>().data();
  }
  return a;
}

// A real-number argument (a 0-d array too; not a bool, not complex): TypeError naming it otherwise.
double real_argument(py::handle obj, const char* name) {
  const auto bad = [&] {
    return py::type_error(std::string("`") + name + "` must be a real number, got " + py::repr(obj).cast<std::string>());
  };
  if (PyFloat_CheckExact(obj.ptr())) return PyFloat_AS_DOUBLE(obj.ptr());  // the usual float: no attribute lookups
  if (py::isinstance<py::bool_>(obj) || !py::hasattr(obj, "__float__") || PyComplex_Check(obj.ptr())) throw bad();
  try {
    return py::reinterpret_borrow<py::object>(obj).attr("__float__")().cast<double>();
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError) && !e.matches(PyExc_ValueError)) throw;
    throw bad();
  }
}

// temperature > 0 finite, softcap > 0 finite or None, z_loss >= 0 finite: ValueError naming the
// argument otherwise.
void parse_logit_options(CrossEntropyOperands& ops, py::handle temperature_obj, py::handle softcap_obj,
                         py::handle z_loss_obj) {
  const double temperature = real_argument(temperature_obj, "temperature");
  if (!(temperature > 0 && std::isfinite(temperature))) {
    throw py::value_error("`temperature` must be a positive finite number, got " + py::repr(temperature_obj).cast<std::string>());
  }
  double softcap = 0.0;
  if (!softcap_obj.is_none()) {
    softcap = real_argument(softcap_obj, "softcap");
    if (!(softcap > 0 && std::isfinite(softcap))) {
      throw py::value_error("`softcap` must be a positive finite number or None, got " +
                            py::repr(softcap_obj).cast<std::string>());
    }
  }
  const double z_loss = real_argument(z_loss_obj, "z_loss");
  if (!(z_loss >= 0 && std::isfinite(z_loss))) {
    throw py::value_error("`z_loss` must be a non-negative finite number, got " + py::repr(z_loss_obj).cast<std::string>());
  }
  ops.temperature = temperature;
  ops.softcap = softcap;
  ops.z_loss = z_loss;
}

// bfloat16 logits are read by the kernels in registers (class-index or probability targets, the
// latter in float32) without the logit options or the Hessian; with those through a float32 copy
// (results rounded once to bfloat16 all the same).
void settle_input_dtype(CrossEntropyArgs& a, bool hessian) {
  if (!a.bfloat16_input) return;
  if (a.ops.has_logit_options() || hessian) {
    a.input = cast_to(a.input.cast<py::array>(), a.compute_dtype);
    return;
  }
  a.call_dtype = DType::kBFloat16;
  a.gradient_dtype = a.result_dtype;
}

// Runs the driver; raises IndexError for an out-of-range target.
double run(CrossEntropyArgs& a, py::object loss, const GradientTarget* grad, py::object upstream,
           const GradientTarget* hessian = nullptr) {
  ReductionCall call(a.call_dtype, a.shape, a.reduced);
  a.ops.input = call.add_input(a.input.cast<py::array>());
  a.ops.target = a.ops.probability_targets ? call.add_input(a.target.cast<py::array>())
                                           : call.add_per_row_input(a.target.cast<py::array>());
  if (loss) a.ops.loss = call.add_per_row_output(loss.cast<py::array>());
  if (grad) a.ops.grad = call.add_output(grad->compute.cast<py::array>(), grad->fresh);
  if (upstream) a.ops.upstream = call.add_per_row_input(upstream.cast<py::array>());
  if (hessian) a.ops.hessian = call.add_output(hessian->compute.cast<py::array>(), hessian->fresh);
  CrossEntropyResult result;
  call.run([&](const ArrayCall& c) { result = run_cross_entropy(c, a.ops); });
  if (result.bad_target) {
    throw py::index_error("`target`: Target " + std::to_string(result.bad_target_value) + " is out of bounds (classes 0.." +
                          std::to_string(a.shape[a.shape.size() == 1 ? 0 : 1] - 1) + ", ignore_index " +
                          std::to_string(a.ops.ignore_index) + ")");
  }
  return result.loss;
}

py::object cross_entropy(py::handle input, py::handle target, py::handle weight, py::handle ignore_index,
                         py::handle reduction, py::handle label_smoothing, py::handle return_grad_obj, py::handle grad_out,
                         py::handle return_hessian_obj, py::handle hessian_out, py::handle temperature,
                         py::handle softcap, py::handle z_loss) {
  CrossEntropyArgs a = parse_arguments(input, target, weight, ignore_index, reduction, label_smoothing);
  parse_logit_options(a.ops, temperature, softcap, z_loss);
  const bool return_hessian = as_flag(return_hessian_obj, "return_hessian") || !hessian_out.is_none();
  const bool return_grad = as_flag(return_grad_obj, "return_grad") || !grad_out.is_none() || return_hessian;
  settle_input_dtype(a, return_hessian);
  GradientTarget grad, hessian;
  if (return_grad) grad = gradient_target(a.input.cast<py::array>(), a.shape, a.result_dtype, a.gradient_dtype, grad_out,
                                          {{a.target, "target"}, {a.weight, "weight"}});
  if (return_hessian) {
    hessian = hessian_target(input, a.input.cast<py::array>(), a.shape, a.result_dtype, a.compute_dtype, hessian_out, grad,
                             {{a.target, "target"}, {a.weight, "weight"}});
  }
  const bool per_row = a.ops.reduction == LossReduction::kNone;
  py::object loss_array = per_row ? py::object(py::array(a.compute_dtype, a.kept_shape)) : py::object();
  const double reduced =
      run(a, loss_array, return_grad ? &grad : nullptr, py::object(), return_hessian ? &hessian : nullptr);
  py::object loss = per_row ? scalar_if_0d(cast_to(loss_array.cast<py::array>(), a.result_dtype))
                            : reduced_loss_scalar(reduced, a.compute, a.result_dtype);
  if (!return_grad) return loss;
  if (!return_hessian) return py::make_tuple(loss, finish_gradient(grad, a.result_dtype));
  py::object grad_result = finish_gradient(grad, a.result_dtype);
  return py::make_tuple(loss, grad_result, finish_gradient(hessian, a.result_dtype));
}

py::object cross_entropy_backward(py::handle grad_output, py::handle input, py::handle target, py::handle weight,
                                  py::handle ignore_index, py::handle reduction, py::handle label_smoothing,
                                  py::handle temperature, py::handle softcap, py::handle z_loss) {
  CrossEntropyArgs a = parse_arguments(input, target, weight, ignore_index, reduction, label_smoothing);
  parse_logit_options(a.ops, temperature, softcap, z_loss);
  py::array upstream = cast_to(as_numeric_array(grad_output, "grad_output"), a.compute_dtype);
  py::object per_row_upstream;
  if (a.ops.reduction == LossReduction::kNone) {
    if (shape_of(upstream) != a.kept_shape) {
      throw py::value_error("`grad_output` has shape " + py::str(upstream.attr("shape")).cast<std::string>() +
                            "; with reduction='none' it must have the loss's shape " +
                            py::str(as_tuple(a.kept_shape)).cast<std::string>());
    }
    per_row_upstream = upstream;
  } else {
    if (upstream.size() != 1 || upstream.ndim() > 1) {
      throw py::value_error("`grad_output` must be a scalar for reduction='" + reduction.cast<std::string>() + "', got shape " +
                            py::str(upstream.attr("shape")).cast<std::string>());
    }
    a.ops.upstream_scalar = upstream.attr("item")().cast<double>();
  }
  settle_input_dtype(a, false);
  GradientTarget grad = gradient_target(a.input.cast<py::array>(), a.shape, a.result_dtype, a.gradient_dtype, py::none(), {});
  run(a, py::object(), &grad, per_row_upstream);
  return cast_to(grad.compute.cast<py::array>(), a.result_dtype);
}

}  // namespace

void bind_cross_entropy(py::module_& m) {
  // Positional only: the public signatures and documentation are python/logitloss/_cross_entropy.py.
  m.def("cross_entropy", &cross_entropy);
  m.def("cross_entropy_backward", &cross_entropy_backward);
}

}  // namespace logitloss
