// Private entry point _core._temperature_terms for logitloss.calibration: per-row NLL and its first
// two derivatives in s = 1 / T (csrc/drivers/temperature_terms.h). The Python caller lays the logits
// out (2-d, C-contiguous, float32 or float64) and checks the labels' range; this checks again.
#include <string>

#include "bindings/arrays.h"
#include "drivers/temperature_terms.h"

namespace logitloss {
namespace {

// Returns a (rows, 3) float64 array: NLL, E_p[z] - z_y and Var_p[z] per row, p = softmax(scale z).
py::array temperature_terms(const py::array& x, const py::array_t<int64_t, py::array::c_style>& label, double scale) {
  TemperatureTermRows rows{DType::kFloat32, x.data(), label.data(), 0, 0, scale, nullptr};
  if (x.dtype().equal(py::dtype::of<double>())) rows.dtype = DType::kFloat64;
  else if (!x.dtype().equal(py::dtype::of<float>())) throw py::type_error("`x` must be float32 or float64");
  if (x.ndim() != 2 || !(x.flags() & py::array::c_style)) throw py::value_error("`x` must be 2-d and C-contiguous");
  rows.rows = x.shape(0);
  rows.classes = x.shape(1);
  if (rows.classes < 1) throw py::value_error("`x` must have at least one class");
  if (label.ndim() != 1 || label.shape(0) != rows.rows) throw py::value_error("`label` must have one entry per row");
  if (!(scale > 0.0 && scale < __builtin_inf())) throw py::value_error("`scale` must be positive and finite");
  for (int64_t r = 0; r < rows.rows; ++r) {
    if (label.data()[r] < 0 || label.data()[r] >= rows.classes) throw py::index_error("`label` out of range");
  }
  py::array_t<double> out(std::vector<int64_t>{rows.rows, (int64_t)kTemperatureTermCount});
  rows.out = out.mutable_data();
  {
    py::gil_scoped_release release;
    run_temperature_terms(rows);
  }
  return out;
}

}  // namespace

void bind_temperature_terms(py::module_& m) {
  m.def("_temperature_terms", &temperature_terms, py::arg("x"), py::arg("label"), py::arg("scale"));
}

}  // namespace logitloss
