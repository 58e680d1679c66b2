// Private entry point _core._softmax_statistics for logitloss.dask: per-row softmax statistics
// of one block of a row-chunked or class-chunked array (csrc/drivers/softmax_statistics.h). The
// Python caller lays the block out (2-d, classes last, C-contiguous, float32 or float64); this
// only checks that it did.
#include <string>

#include "bindings/arrays.h"
#include "drivers/softmax_statistics.h"

namespace logitloss {
namespace {

DType block_dtype(const py::array& a) {
  if (a.dtype().equal(py::dtype::of<float>())) return DType::kFloat32;
  if (a.dtype().equal(py::dtype::of<double>())) return DType::kFloat64;
  throw py::type_error("`x` must be float32 or float64, got " + py::str(a.dtype()).cast<std::string>());
}

void check_layout(const py::array& a, const py::array& x, int ndim, const char* name) {
  if (!a.dtype().equal(x.dtype())) throw py::type_error(std::string("`") + name + "` must have the dtype of `x`");
  if (a.ndim() != ndim || !(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string("`") + name + "` must be " + std::to_string(ndim) + "-d and C-contiguous");
  }
}

// Returns a (rows, 5) float64 array: max, count, others, gap, mass per row (SoftmaxStatistic).
py::array softmax_statistics(const py::array& x, const py::object& target, const py::object& weight,
                             double target_scale, double target_offset) {
  SoftmaxStatisticsRows rows{block_dtype(x), nullptr, nullptr, nullptr, 0, 0, target_scale, target_offset, nullptr};
  check_layout(x, x, 2, "x");
  rows.rows = x.shape(0);
  rows.classes = x.shape(1);
  if (rows.classes < 1) throw py::value_error("`x` must have at least one class");
  rows.x = x.data();
  py::array target_array, weight_array;
  if (!target.is_none()) {
    target_array = target.cast<py::array>();
    check_layout(target_array, x, 2, "target");
    if (target_array.shape(0) != rows.rows || target_array.shape(1) != rows.classes) {
      throw py::value_error("`target` must have the shape of `x`");
    }
    rows.target = target_array.data();
  }
  if (!weight.is_none()) {
    weight_array = weight.cast<py::array>();
    check_layout(weight_array, x, 1, "weight");
    if (weight_array.shape(0) != rows.classes) throw py::value_error("`weight` must have one entry per class");
    rows.weight = weight_array.data();
  }
  py::array_t<double> out(std::vector<int64_t>{rows.rows, (int64_t)kStatisticCount});
  rows.out = out.mutable_data();
  {
    py::gil_scoped_release release;
    run_softmax_statistics(rows);
  }
  return out;
}

}  // namespace

void bind_softmax_statistics(py::module_& m) {
  m.def("_softmax_statistics", &softmax_statistics);
}

}  // namespace logitloss
