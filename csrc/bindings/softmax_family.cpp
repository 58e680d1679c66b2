// Python entry points of logsumexp / softmax / log_softmax, their backward functions and
// entropy_with_logits:
// SciPy's argument rules (axis, keepdims, b broadcasting, dtype promotion, 0-d and empty input),
// then the drivers in csrc/drivers/softmax_family.cpp without the GIL.
#include <limits>
#include <optional>
#include <string>

#include "bindings/arrays.h"
#include "bindings/reduction_call.h"
#include "drivers/entropy.h"
#include "drivers/softmax_family.h"

namespace logitloss {
namespace {

// The arguments of a reduction, resolved: inputs in the compute dtype, broadcast to one shape
// (0-d promoted to 1-d as SciPy does), the reduced axes, and the shapes of per-row results.
struct Reduction {
  py::dtype result_dtype;
  DType compute;
  py::dtype compute_dtype;
  AxisSizes a_shape;      // `a` as given, before broadcasting with `b`
  AxisSizes input_shape;  // broadcast with `b`, before 0-d promotion
  AxisSizes shape;
  AxisFlags reduced;
  AxisSizes kept_shape, keepdims_shape;
  int64_t length = 1, rows = 1;
};

// keep_input: `a` (and `b`) stay as they are (bfloat16 the kernels read in registers).
Reduction resolve(const py::dtype& result_dtype, py::array& a, py::array* b, py::handle axis, bool keep_input = false) {
  Reduction r;
  r.result_dtype = result_dtype;
  r.compute = compute_dtype(result_dtype);
  r.compute_dtype = numpy_dtype(r.compute);
  if (!keep_input) a = cast_to(a, r.compute_dtype);
  r.a_shape = shape_of(a);
  if (b) {
    if (!keep_input) *b = cast_to(*b, r.compute_dtype);
    if (shape_of(a) != shape_of(*b)) {
      py::module_ np = py::module_::import("numpy");
      py::tuple both;
      try {
        both = np.attr("broadcast_arrays")(a, *b);
      } catch (py::error_already_set&) {
        throw py::value_error("`b` of shape " + py::str(b->attr("shape")).cast<std::string>() +
                              " does not broadcast with `a` of shape " + py::str(a.attr("shape")).cast<std::string>());
      }
      a = both[0].cast<py::array>();
      *b = both[1].cast<py::array>();
    }
  }
  r.input_shape = shape_of(a);
  if (a.ndim() == 0) {
    a = a.reshape({1});
    if (b) *b = b->reshape({1});
  }
  r.shape = shape_of(a);
  r.reduced = reduced_axes(axis, (int)a.ndim());
  for (size_t i = 0; i < r.shape.size(); ++i) {
    if (r.reduced[i]) {
      r.length *= r.shape[i];
      r.keepdims_shape.push_back(1);
    } else {
      r.rows *= r.shape[i];
      r.kept_shape.push_back(r.shape[i]);
      r.keepdims_shape.push_back(r.shape[i]);
    }
  }
  return r;
}

// A computed array in the compute dtype, as the result dtype (float16, longdouble).
py::array as_result_dtype(const py::array& a, const Reduction& r) {
  return r.compute_dtype.equal(r.result_dtype) ? a : cast_to(a, r.result_dtype);
}

// d result / d a in `a`'s own shape: where `b` broadcast `a` to a larger shape, each element of `a`
// fed every term it was broadcast to, so its gradient is the sum of theirs (as torch's autograd sums
// a broadcast input's gradient). float16/float32 gradients are summed in float64, so the sum adds no
// rounding beyond the final one; float64 ones by NumPy's pairwise sum (log2(n) eps of sum |terms|).
py::array summed_to_a_shape(py::array grad, const Reduction& r) {
  const AxisSizes& full = r.input_shape;
  if (full == r.a_shape) return grad.reshape(full);
  const size_t added = full.size() - r.a_shape.size();
  py::list axes;
  for (size_t i = 0; i < full.size(); ++i) {
    if (i < added || (r.a_shape[i - added] == 1 && full[i] != 1)) axes.append(py::int_(i));
  }
  py::module_ np = py::module_::import("numpy");
  const bool widen = r.compute != DType::kFloat64;
  py::object sum = grad.reshape(full).attr("sum")(py::arg("axis") = py::tuple(axes),
                                                  py::arg("dtype") = widen ? py::object(np.attr("float64")) : py::none());
  return cast_to(py::array::ensure(sum), r.compute_dtype).reshape(r.a_shape);
}

// An upstream per-row argument (grad_output, result): broadcast to the forward result's shape,
// returned in keepdims form.
py::array per_row_argument(py::handle obj, const char* name, const Reduction& r, bool keepdims) {
  py::array arr = cast_to(as_numeric_array(obj, name), r.compute_dtype);
  const AxisSizes& forward_shape = keepdims ? r.keepdims_shape : r.kept_shape;
  py::module_ np = py::module_::import("numpy");
  try {
    arr = np.attr("broadcast_to")(arr, as_tuple(forward_shape)).cast<py::array>();
  } catch (py::error_already_set&) {
    throw py::value_error(std::string("`") + name + "` of shape " + py::str(arr.attr("shape")).cast<std::string>() +
                          " does not match the forward result's shape " + py::str(as_tuple(forward_shape)).cast<std::string>());
  }
  return arr.reshape(r.keepdims_shape);
}

py::object logsumexp(py::handle a_obj, py::handle axis, py::handle b_obj, bool keepdims, bool return_sign,
                     bool return_grad) {
  py::array a = as_numeric_array(a_obj, "a");
  const bool weighted = !b_obj.is_none();
  py::array b = weighted ? as_numeric_array(b_obj, "b") : a;  // `a` is a placeholder when unweighted
  // bfloat16 values (no weights, no gradient) are read by the kernels in registers; the rest
  // through a float32 copy.
  const bool bfloat16_kernels = !weighted && !return_grad && is_bfloat16(a.dtype());
  Reduction r = resolve(weighted ? floating_result_type(a, b) : floating_dtype(a.dtype()), a, weighted ? &b : nullptr, axis,
                        bfloat16_kernels);

  py::array out(r.compute_dtype, r.kept_shape);
  // Optional outputs exist only when asked for (a default py::array would allocate one).
  py::object sign = return_sign ? py::object(py::array(r.compute_dtype, r.kept_shape)) : py::object();
  const std::optional<NewArray> new_grad = return_grad ? std::optional<NewArray>(empty_like_layout(a, r.compute_dtype))
                                                      : std::nullopt;
  py::object grad = return_grad ? py::object(new_grad->array) : py::object();
  if (r.length == 0) {
    // SciPy: an empty sum is 0, so the result is -inf and its sign is sign(-inf) = -1.
    out.attr("fill")(-std::numeric_limits<double>::infinity());
    if (return_sign) sign.attr("fill")(-1.0);
  } else if (r.rows > 0) {
    ReductionCall call(bfloat16_kernels ? DType::kBFloat16 : r.compute, r.shape, r.reduced);
    LogsumexpOperands ops;
    ops.a = call.add_input(a);
    if (weighted) ops.b = call.add_input(b);
    ops.out = call.add_per_row_output(out);
    if (return_sign) ops.sign = call.add_per_row_output(sign.cast<py::array>());
    if (return_grad) ops.grad = call.add_output(grad.cast<py::array>(), new_grad->fresh);
    ops.return_sign = return_sign;
    call.run([&](const ArrayCall& c) { run_logsumexp(c, ops); });
  }
  auto shaped = [&](py::array a) { return keepdims ? a.reshape(r.keepdims_shape) : a; };
  py::tuple results(1 + return_sign + return_grad);
  size_t i = 0;
  results[i++] = scalar_if_0d(shaped(as_result_dtype(out, r)));
  if (return_sign) results[i++] = scalar_if_0d(shaped(as_result_dtype(sign.cast<py::array>(), r)));
  if (return_grad) results[i++] = as_result_dtype(summed_to_a_shape(grad.cast<py::array>(), r), r);
  return results.size() == 1 ? py::object(results[0]) : py::object(results);
}

py::object softmax_common(py::handle x_obj, py::handle axis, py::handle out_obj, bool log) {
  py::array x = as_numeric_array(x_obj, "x");
  const bool bfloat16_kernels = is_bfloat16(x.dtype());  // read in registers, written as bfloat16
  Reduction r = resolve(floating_dtype(x.dtype()), x, nullptr, axis, bfloat16_kernels);
  if (r.length == 0) {
    throw py::value_error(std::string(log ? "log_softmax" : "softmax") +
                          ": `x` has length 0 along `axis`; the normalization is undefined");
  }
  const bool has_out = !out_obj.is_none();
  if (has_out && !py::isinstance<py::array>(out_obj)) throw py::type_error("`out` must be a numpy.ndarray");
  py::array user_out = has_out ? py::reinterpret_borrow<py::array>(out_obj) : x;  // x: placeholder
  if (has_out) check_output_array(user_out, r.input_shape, r.result_dtype, "out");
  // Compute straight into the caller's array when it has the compute dtype.
  const bool direct = has_out && (bfloat16_kernels || r.compute_dtype.equal(r.result_dtype));
  const NewArray new_out = direct ? NewArray{user_out.reshape(r.shape), false}
                                  : empty_like_layout(x, bfloat16_kernels ? r.result_dtype : r.compute_dtype);
  py::array out = new_out.array;
  if (direct) check_no_overlap(out, "out", x, "x", /*alias_allowed=*/true);
  if (r.rows > 0) {
    ReductionCall call(bfloat16_kernels ? DType::kBFloat16 : r.compute, r.shape, r.reduced);
    const int x_op = call.add_input(x);
    const int out_op = call.add_output(out, new_out.fresh);
    call.run([&](const ArrayCall& c) { run_softmax(c, x_op, out_op, log); });
  }
  if (has_out) {
    if (!direct) copy_rounded(user_out, out.reshape(r.input_shape));
    return user_out;
  }
  return scalar_if_0d(as_result_dtype(out, r).reshape(r.input_shape));
}

py::object logsumexp_backward(py::handle g_obj, py::handle a_obj, py::handle axis, py::handle b_obj, bool keepdims,
                              py::handle result_obj) {
  py::array a = as_numeric_array(a_obj, "a");
  const bool weighted = !b_obj.is_none();
  py::array b = weighted ? as_numeric_array(b_obj, "b") : a;  // `a` is a placeholder when unweighted
  Reduction r = resolve(weighted ? floating_result_type(a, b) : floating_dtype(a.dtype()), a, weighted ? &b : nullptr, axis);
  py::array g = per_row_argument(g_obj, "grad_output", r, keepdims);
  const bool has_result = !result_obj.is_none();
  py::array result = has_result ? per_row_argument(result_obj, "result", r, keepdims) : g;
  const NewArray new_grad = empty_like_layout(a, r.compute_dtype);
  const py::array& grad = new_grad.array;
  if (r.length > 0 && r.rows > 0) {
    ReductionCall call(r.compute, r.shape, r.reduced);
    LogsumexpBackwardOperands ops;
    ops.g = call.add_input(g);
    ops.a = call.add_input(a);
    if (weighted) ops.b = call.add_input(b);
    if (has_result) ops.result = call.add_input(result);
    ops.out = call.add_output(grad, new_grad.fresh);
    call.run([&](const ArrayCall& c) { run_logsumexp_backward(c, ops); });
  }
  return as_result_dtype(summed_to_a_shape(grad, r), r);
}

py::object softmax_backward_common(py::handle g_obj, py::handle y_obj, py::handle axis, bool log) {
  py::array g = as_numeric_array(g_obj, "grad_output");
  py::array y = as_numeric_array(y_obj, "output");
  if (shape_of(g) != shape_of(y)) {
    throw py::value_error("`grad_output` has shape " + py::str(g.attr("shape")).cast<std::string>() +
                          " but `output` has shape " + py::str(y.attr("shape")).cast<std::string>() + "; they must match");
  }
  // Both bfloat16: read in registers, the gradient written as bfloat16.
  const bool bfloat16_kernels = is_bfloat16(g.dtype()) && is_bfloat16(y.dtype());
  Reduction r = resolve(floating_result_type(g, y), y, &g, axis, bfloat16_kernels);
  const NewArray new_grad = empty_like_layout(y, bfloat16_kernels ? r.result_dtype : r.compute_dtype);
  const py::array& grad = new_grad.array;
  if (r.length > 0 && r.rows > 0) {
    ReductionCall call(bfloat16_kernels ? DType::kBFloat16 : r.compute, r.shape, r.reduced);
    const int g_op = call.add_input(g);
    const int y_op = call.add_input(y);
    const int out_op = call.add_output(grad, new_grad.fresh);
    call.run([&](const ArrayCall& c) { run_softmax_backward(c, g_op, y_op, out_op, log); });
  }
  return scalar_if_0d(as_result_dtype(grad, r).reshape(r.input_shape));
}

// H(softmax(x)) over `axis` (kept axes' shape), and with return_grad (or grad_out) the tuple
// (H, dH/dx); grad_out as cross_entropy's: x's shape and the result dtype, may be x itself.
py::object entropy_with_logits(py::handle x_obj, py::handle axis, bool return_grad, py::handle grad_out_obj) {
  py::array x = as_numeric_array(x_obj, "x");
  const bool bfloat16_kernels = is_bfloat16(x.dtype());  // read in registers, the gradient as bfloat16
  Reduction r = resolve(floating_dtype(x.dtype()), x, nullptr, axis, bfloat16_kernels);
  if (r.length == 0) {
    throw py::value_error("entropy_with_logits: `x` has length 0 along `axis`; the distribution is undefined");
  }
  const bool has_grad_out = !grad_out_obj.is_none();
  if (has_grad_out && !py::isinstance<py::array>(grad_out_obj)) throw py::type_error("`grad_out` must be a numpy.ndarray");
  py::array grad_out = has_grad_out ? py::reinterpret_borrow<py::array>(grad_out_obj) : x;  // x: placeholder
  if (has_grad_out) check_output_array(grad_out, r.input_shape, r.result_dtype, "grad_out");
  return_grad = return_grad || has_grad_out;
  // Straight into the caller's array when it has the compute dtype; else a temporary copied there.
  const bool direct = has_grad_out && (bfloat16_kernels || r.compute_dtype.equal(r.result_dtype));
  std::optional<NewArray> grad;
  if (direct) {
    check_no_overlap(grad_out, "grad_out", x, "x", /*alias_allowed=*/true);
    grad = NewArray{grad_out.reshape(r.shape), false};
  } else if (return_grad) {
    grad = empty_like_layout(x, bfloat16_kernels ? r.result_dtype : r.compute_dtype);
  }
  py::array out(r.compute_dtype, r.kept_shape);
  if (r.rows > 0) {
    ReductionCall call(bfloat16_kernels ? DType::kBFloat16 : r.compute, r.shape, r.reduced);
    EntropyOperands ops;
    ops.x = call.add_input(x);
    ops.out = call.add_per_row_output(out);
    if (return_grad) ops.grad = call.add_output(grad->array, grad->fresh);
    call.run([&](const ArrayCall& c) { run_entropy(c, ops); });
  }
  py::object value = scalar_if_0d(as_result_dtype(out, r));
  if (!return_grad) return value;
  if (has_grad_out) {
    if (!direct) copy_rounded(grad_out, grad->array.reshape(r.input_shape));
    return py::make_tuple(value, grad_out);
  }
  return py::make_tuple(value, as_result_dtype(grad->array, r).reshape(r.input_shape));
}

}  // namespace

void bind_softmax_family(py::module_& m) {
  // Positional only: the public signatures (keywords, defaults, docs) are the Python wrappers in
  // python/logitloss/_softmax_family.py; this keeps the per-call cost of tiny calls low.
  m.def("logsumexp", [](py::handle a, py::handle axis, py::handle b, py::handle keepdims, py::handle return_sign,
                        py::handle return_grad) {
    return logsumexp(a, axis, b, as_flag(keepdims, "keepdims"), as_flag(return_sign, "return_sign"),
                     as_flag(return_grad, "return_grad"));
  });
  m.def("softmax", [](py::handle x, py::handle axis, py::handle out) { return softmax_common(x, axis, out, false); });
  m.def("log_softmax", [](py::handle x, py::handle axis, py::handle out) { return softmax_common(x, axis, out, true); });
  m.def("logsumexp_backward", [](py::handle g, py::handle a, py::handle axis, py::handle b, py::handle keepdims,
                                 py::handle result) {
    return logsumexp_backward(g, a, axis, b, as_flag(keepdims, "keepdims"), result);
  });
  m.def("softmax_backward",
        [](py::handle g, py::handle y, py::handle axis) { return softmax_backward_common(g, y, axis, false); });
  m.def("log_softmax_backward",
        [](py::handle g, py::handle y, py::handle axis) { return softmax_backward_common(g, y, axis, true); });
  m.def("entropy_with_logits", [](py::handle x, py::handle axis, py::handle return_grad, py::handle grad_out) {
    return entropy_with_logits(x, axis, as_flag(return_grad, "return_grad"), grad_out);
  });
}

}  // namespace logitloss
