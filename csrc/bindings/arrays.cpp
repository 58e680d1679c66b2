#include "bindings/arrays.h"

#include <string>

namespace logitloss {

namespace {

std::string describe_shape(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  return s + ")";
}

py::module_& numpy() {
  static py::module_ np = py::module_::import("numpy");
  return np;
}

}  // namespace

py::array as_numeric_array(py::handle obj, const char* name) {
  py::array arr = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : [&] {
    PyObject* converted = py::detail::npy_api::get().PyArray_FromAny_(obj.ptr(), nullptr, 0, 0,
                                                                      py::detail::npy_api::NPY_ARRAY_ENSUREARRAY_, nullptr);
    if (!converted) throw py::error_already_set();
    return py::reinterpret_steal<py::array>(converted);
  }();
  const char kind = arr.dtype().kind();
  if (kind == 'f' || kind == 'i' || kind == 'u' || kind == 'b') return arr;
  const std::string what = kind == 'c' ? "complex values are not supported"
                                       : "expected a real floating, integer or boolean array";
  throw py::type_error(std::string("`") + name + "`: " + what + ", got dtype " + py::str(arr.dtype()).cast<std::string>());
}

py::dtype floating_dtype(const py::dtype& dt) {
  // Native byte order whatever the input's: results are new arrays in this machine's order.
  return dt.kind() == 'f' ? py::dtype("f" + std::to_string(dt.itemsize())) : py::dtype::of<double>();
}

py::dtype floating_result_type(const py::array& a, const py::array& b) {
  return floating_dtype(py::reinterpret_borrow<py::dtype>(numpy().attr("result_type")(a, b)));
}

DType compute_dtype(const py::dtype& result) {
  return result.kind() == 'f' && result.itemsize() <= 4 ? DType::kFloat32 : DType::kFloat64;
}

py::dtype numpy_dtype(DType d) { return d == DType::kFloat32 ? py::dtype::of<float>() : py::dtype::of<double>(); }

py::array cast_to(const py::array& arr, const py::dtype& dt) {
  if (arr.dtype().is(dt) || arr.dtype().equal(dt)) return arr;
  if (dt.itemsize() < arr.dtype().itemsize()) {
    // Narrowing a result (float32 -> float16): values beyond the range round to +-inf, as the
    // exact value would; that is the answer, not an overflow to warn about.
    py::object quiet = numpy().attr("errstate")(py::arg("over") = "ignore");
    quiet.attr("__enter__")();
    py::object narrowed = arr.attr("astype")(dt);
    quiet.attr("__exit__")(py::none(), py::none(), py::none());
    return py::reinterpret_steal<py::array>(narrowed.release());
  }
  return py::reinterpret_steal<py::array>(arr.attr("astype")(dt).release());
}

std::vector<bool> reduced_axes(py::handle axis, int ndim, const char* name) {
  std::vector<bool> reduced(ndim, false);
  if (axis.is_none()) {
    reduced.assign(ndim, true);
    return reduced;
  }
  std::vector<py::handle> items;
  py::tuple tuple_holder;
  if (py::isinstance<py::tuple>(axis) || py::isinstance<py::list>(axis)) {
    tuple_holder = py::tuple(py::reinterpret_borrow<py::object>(axis));
    for (auto item : tuple_holder) items.push_back(item);
  } else {
    items.push_back(axis);
  }
  for (py::handle item : items) {
    int64_t raw;
    if (PyLong_CheckExact(item.ptr())) {  // the common case, without attribute lookups
      raw = PyLong_AsLongLong(item.ptr());
      if (raw == -1 && PyErr_Occurred()) throw py::error_already_set();
    } else {
      if (py::isinstance<py::bool_>(item) || !py::hasattr(item, "__index__")) {
        throw py::type_error(std::string("`") + name + "` must be None, an integer or a tuple of integers, got " +
                             py::repr(axis).cast<std::string>());
      }
      raw = py::reinterpret_borrow<py::object>(item).attr("__index__")().cast<int64_t>();
    }
    if (raw < -ndim || raw >= ndim) {
      py::object axis_error = numpy().attr("exceptions").attr("AxisError");
      PyErr_SetObject(axis_error.ptr(), axis_error(raw, ndim, py::str(name)).ptr());
      throw py::error_already_set();
    }
    const int64_t a = raw < 0 ? raw + ndim : raw;
    if (reduced[a]) throw py::value_error(std::string("`") + name + "` has a repeated axis: " + py::repr(axis).cast<std::string>());
    reduced[a] = true;
  }
  return reduced;
}

std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

py::tuple as_tuple(const std::vector<int64_t>& shape) {
  py::tuple t(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t[i] = py::int_(shape[i]);
  return t;
}

std::vector<int64_t> strides_of(const py::array& a) {
  return std::vector<int64_t>(a.strides(), a.strides() + a.ndim());
}

py::array empty_like_layout(const py::array& like, const py::dtype& dt) {
  if (like.flags() & py::array::c_style) return py::array(dt, shape_of(like));
  return py::reinterpret_steal<py::array>(numpy().attr("empty_like")(like, dt).release());
}

py::object scalar_if_0d(const py::array& a) {
  if (a.ndim() != 0) return a;
  return a[py::tuple()];
}

void check_output_array(const py::array& out, const std::vector<int64_t>& shape, const py::dtype& dt,
                        const char* name) {
  if (shape_of(out) != shape) {
    throw py::value_error(std::string("`") + name + "` has shape " + describe_shape(shape_of(out)) + ", expected " +
                          describe_shape(shape));
  }
  if (!out.dtype().equal(dt)) {
    throw py::type_error(std::string("`") + name + "` has dtype " + py::str(out.dtype()).cast<std::string>() +
                         ", expected " + py::str(dt).cast<std::string>());
  }
  if (!out.writeable()) throw py::value_error(std::string("`") + name + "` is read-only");
}

}  // namespace logitloss
