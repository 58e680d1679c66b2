// Private entry points _core._kl_div_rows and _core._jsd_rows for logitloss.kl_div_with_logits and
// logitloss.jsd_with_logits: the Python caller
// validates the arguments and lays the operands out as rows x classes (any strides); this checks
// that it did, and runs the driver with the GIL released.
#include <string>

#include "bindings/arrays.h"
#include "drivers/divergence.h"

namespace logitloss {
namespace {

RowOperand operand_of(const py::array& a, const py::array& like, const char* name) {
  if (!a.dtype().equal(like.dtype())) {
    throw py::type_error(std::string("`") + name + "` must have the dtype of `input`");
  }
  if (a.ndim() != 2 || a.shape(0) != like.shape(0) || a.shape(1) != like.shape(1)) {
    throw py::value_error(std::string("`") + name + "` must have the shape of `input`");
  }
  return {static_cast<char*>(const_cast<void*>(a.data())), a.strides(0), a.strides(1)};
}

// Checks the operands and fills `rows` (the arrays that must outlive the call are kept in
// `where_array` and `grad_array`); returns the float64 loss array the driver writes.
py::array_t<double> prepare_rows(DivergenceRows& rows, const py::array& input, const py::array& target,
                                 double inverse_temperature, double grad_scale, const py::object& where,
                                 const py::object& grad, py::array& where_array, py::array& grad_array) {
  if (input.dtype().equal(py::dtype::of<float>())) rows.dtype = DType::kFloat32;
  else if (input.dtype().equal(py::dtype::of<double>())) rows.dtype = DType::kFloat64;
  else throw py::type_error("`input` must be float32 or float64, got " + py::str(input.dtype()).cast<std::string>());
  if (input.ndim() != 2 || input.shape(1) < 1) throw py::value_error("`input` must be 2-d with at least one class");
  if (!(inverse_temperature > 0) || !(inverse_temperature < __builtin_inf())) {
    throw py::value_error("`temperature` must be positive and finite");
  }
  rows.input = operand_of(input, input, "input");
  rows.target = operand_of(target, input, "target");
  rows.rows = input.shape(0);
  rows.classes = input.shape(1);
  rows.inverse_temperature = inverse_temperature;
  rows.grad_scale = grad_scale;
  if (!where.is_none()) {
    where_array = where.cast<py::array>();
    if (!where_array.dtype().equal(py::dtype::of<bool>()) || where_array.ndim() != 1 ||
        where_array.shape(0) != rows.rows || !(where_array.flags() & py::array::c_style)) {
      throw py::value_error("`where` must be a contiguous boolean array of one entry per row");
    }
    rows.included = static_cast<const bool*>(where_array.data());
  }
  if (!grad.is_none()) {
    grad_array = grad.cast<py::array>();
    if (!grad_array.writeable()) throw py::value_error("`grad_out` must be writable");
    rows.grad = operand_of(grad_array, input, "grad_out");
    check_no_overlap(grad_array, "grad_out", input, "input", false);
    check_no_overlap(grad_array, "grad_out", target, "target", false);
  }
  py::array_t<double> loss(std::vector<int64_t>{rows.rows});
  rows.loss = loss.mutable_data();
  return loss;
}

// Returns the float64 loss of every row; writes the gradient into `grad` when it is not None.
py::array kl_div_rows(const py::array& input, const py::array& target, double inverse_temperature, double grad_scale,
                      const py::object& where, const py::object& grad) {
  DivergenceRows rows{};
  py::array where_array, grad_array;
  py::array_t<double> loss =
      prepare_rows(rows, input, target, inverse_temperature, grad_scale, where, grad, where_array, grad_array);
  {
    py::gil_scoped_release release;
    run_kl_div(rows);
  }
  return loss;
}

// As kl_div_rows, for the generalized Jensen-Shannon divergence at `beta`.
py::array jsd_rows(const py::array& input, const py::array& target, double beta, double inverse_temperature,
                   double grad_scale, const py::object& where, const py::object& grad) {
  if (!(beta >= 0.0 && beta <= 1.0)) throw py::value_error("`beta` must be in [0, 1]");
  DivergenceRows rows{};
  py::array where_array, grad_array;
  py::array_t<double> loss =
      prepare_rows(rows, input, target, inverse_temperature, grad_scale, where, grad, where_array, grad_array);
  rows.beta = beta;
  {
    py::gil_scoped_release release;
    run_jsd(rows);
  }
  return loss;
}

}  // namespace

void bind_divergence(py::module_& m) {
  m.def("_kl_div_rows", &kl_div_rows);
  m.def("_jsd_rows", &jsd_rows);
}

}  // namespace logitloss
