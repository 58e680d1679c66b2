#include "bindings/arrays.h"

#include "bindings/output_buffers.h"

#include <pybind11/gil_safe_call_once.h>

#include <string>

namespace logitloss {

namespace {

std::string describe_shape(const AxisSizes& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  return s + ")";
}

// Stored once and never destroyed: a static py::module_ would be released by the C++ exit
// handlers after Python has finalized (a crash at exit), and a plain function-local static could
// deadlock (its initialization guard held across an import that releases the GIL).
const py::module_& numpy() {
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::module_> storage;
  return storage.call_once_and_store_result([] { return py::module_::import("numpy"); }).get_stored();
}

// f() under np.errstate(over="ignore"): narrowing a result (float32 -> float16) rounds values
// beyond the range to +-inf, as the exact value would; that is the answer, not an overflow to
// warn about.
template <class F>
py::object ignoring_overflow(F f) {
  py::object quiet = numpy().attr("errstate")(py::arg("over") = "ignore");
  quiet.attr("__enter__")();
  py::object result;
  try {
    result = f();
  } catch (...) {
    quiet.attr("__exit__")(py::none(), py::none(), py::none());
    throw;
  }
  quiet.attr("__exit__")(py::none(), py::none(), py::none());
  return result;
}

}  // namespace

py::array as_numeric_array(py::handle obj, const char* name) {
  py::array arr = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : [&] {
    PyObject* converted = py::detail::npy_api::get().PyArray_FromAny_(obj.ptr(), nullptr, 0, 0,
                                                                      py::detail::npy_api::NPY_ARRAY_ENSUREARRAY_, nullptr);
    if (!converted) {
      py::error_already_set error;
      const std::string what = std::string("`") + name + "`: " + py::str(error.value()).cast<std::string>();
      if (error.matches(PyExc_TypeError)) throw py::type_error(what);
      if (error.matches(PyExc_ValueError)) throw py::value_error(what);
      throw error;  // MemoryError, KeyboardInterrupt ...: as they are
    }
    return py::reinterpret_steal<py::array>(converted);
  }();
  const char kind = arr.dtype().kind();
  if (kind == 'f' || kind == 'i' || kind == 'u' || kind == 'b' || is_bfloat16(arr.dtype())) return arr;
  const std::string what = kind == 'c' ? "complex values are not supported"
                           : kind == 'V' && arr.dtype().itemsize() == 2
                               ? "a 2-byte void dtype that is not ml_dtypes.bfloat16 is not supported"
                               : "expected a real floating, integer or boolean array";
  throw py::type_error(std::string("`") + name + "`: " + what + ", got dtype " + py::str(arr.dtype()).cast<std::string>());
}

bool as_flag(py::handle obj, const char* name) {
  py::detail::make_caster<bool> flag;
  if (!flag.load(obj, /*convert=*/true)) {
    throw py::type_error(std::string("`") + name + "` must be a bool, got " + py::repr(obj).cast<std::string>());
  }
  return static_cast<bool>(flag);
}

int64_t as_int64(py::handle obj, const char* name) {
  const auto describe = [&] { return py::repr(obj).cast<std::string>(); };
  const auto not_integer = [&] { return py::type_error(std::string("`") + name + "` must be an integer, got " + describe()); };
  if (py::isinstance<py::bool_>(obj) || !PyIndex_Check(obj.ptr())) throw not_integer();
  py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!index) {
    py::error_already_set error;
    if (error.matches(PyExc_TypeError)) throw not_integer();
    throw error;
  }
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow) throw py::value_error(std::string("`") + name + "` does not fit in a 64-bit integer: " + describe());
  return value;
}

bool is_bfloat16(const py::dtype& dt) {
  // ml_dtypes' dtype is one object: once recognised by its name, by its address (the name is a
  // Python attribute lookup, several per call). Kept alive by the reference taken here; the GIL is
  // held.
  static PyObject* recognised = nullptr;
  if (dt.ptr() == recognised) return true;
  if (dt.kind() != 'V' || dt.itemsize() != 2 || py::str(dt.attr("name")).cast<std::string>() != "bfloat16") return false;
  if (!recognised) recognised = py::reinterpret_borrow<py::object>(dt).release().ptr();
  return true;
}

bool is_floating(const py::dtype& dt) { return dt.kind() == 'f' || is_bfloat16(dt); }

py::dtype floating_dtype(const py::dtype& dt) {
  if (is_bfloat16(dt)) return dt;
  // Native byte order whatever the input's: results are new arrays in this machine's order.
  // ('=' / '|': already native, returned as it is; building a dtype from a string costs a parse.)
  if (dt.kind() == 'f' && (dt.byteorder() == '=' || dt.byteorder() == '|')) return dt;
  return dt.kind() == 'f' ? py::dtype("f" + std::to_string(dt.itemsize())) : py::dtype::of<double>();
}

py::dtype floating_result_type(const py::array& a, const py::array& b) {
  return floating_dtype(py::reinterpret_borrow<py::dtype>(numpy().attr("result_type")(a, b)));
}

DType compute_dtype(const py::dtype& result) {
  return (result.kind() == 'f' && result.itemsize() <= 4) || is_bfloat16(result) ? DType::kFloat32 : DType::kFloat64;
}

py::dtype numpy_dtype(DType d) { return d == DType::kFloat32 ? py::dtype::of<float>() : py::dtype::of<double>(); }

py::array cast_to(const py::array& arr, const py::dtype& dt) {
  if (arr.dtype().is(dt) || arr.dtype().equal(dt)) return arr;
  if (dt.itemsize() < arr.dtype().itemsize()) {
    return py::reinterpret_steal<py::array>(ignoring_overflow([&] { return arr.attr("astype")(dt); }).release());
  }
  return py::reinterpret_steal<py::array>(arr.attr("astype")(dt).release());
}

void copy_rounded(const py::array& dst, const py::array& src) {
  ignoring_overflow([&] { return numpy().attr("copyto")(dst, src, py::arg("casting") = "unsafe"); });
}

AxisFlags reduced_axes(py::handle axis, int ndim, const char* name) {
  AxisFlags reduced(ndim, false);
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
  const auto not_integers = [&] {
    return py::type_error(std::string("`") + name + "` must be None, an integer or a tuple of integers, got " +
                          py::repr(axis).cast<std::string>());
  };
  for (py::handle item : items) {
    if (py::isinstance<py::bool_>(item) || !PyIndex_Check(item.ptr())) throw not_integers();
    // (an array of several integers has __index__, and raises TypeError in it)
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
    if (!index) {
      py::error_already_set error;
      if (error.matches(PyExc_TypeError)) throw not_integers();
      throw error;
    }
    int overflow = 0;
    const long long raw = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (raw == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow || raw < -ndim || raw >= ndim) {  // an int beyond int64 is out of range too
      py::object axis_error = numpy().attr("exceptions").attr("AxisError");
      PyErr_SetObject(axis_error.ptr(), axis_error(index, ndim, py::str(name)).ptr());
      throw py::error_already_set();
    }
    const int64_t a = raw < 0 ? raw + ndim : raw;
    if (reduced[a]) throw py::value_error(std::string("`") + name + "` has a repeated axis: " + py::repr(axis).cast<std::string>());
    reduced[a] = true;
  }
  return reduced;
}

AxisSizes shape_of(const py::array& a) {
  return AxisSizes(a.shape(), a.shape() + a.ndim());  // in place: no allocation for <= kInlineAxes dims
}

py::tuple as_tuple(const AxisSizes& shape) {
  py::tuple t(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t[i] = py::int_(shape[i]);
  return t;
}

namespace {

// Whether like's axes lie in C order (a slice of a C-ordered array, say): the strides of its axes
// longer than 1 do not grow from first to last.
bool in_c_order(const py::array& like) {
  py::ssize_t previous = -1;
  for (py::ssize_t i = like.ndim(); i-- > 0;) {
    if (like.shape(i) <= 1) continue;
    const py::ssize_t stride = like.strides(i) < 0 ? -like.strides(i) : like.strides(i);
    if (stride < previous) return false;
    previous = stride;
  }
  return true;
}

}  // namespace

NewArray empty_like_layout(const py::array& like, const py::dtype& dt) {
  if (in_c_order(like)) return new_c_array(dt, shape_of(like));
  return {py::reinterpret_steal<py::array>(numpy().attr("empty_like")(like, dt).release()), true};
}

py::object scalar_if_0d(const py::array& a) {
  if (a.ndim() != 0) return a;
  return a[py::tuple()];
}

void check_output_array(const py::array& out, const AxisSizes& shape, const py::dtype& dt,
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

void check_no_overlap(const py::array& out, const char* out_name, const py::array& input, const char* input_name,
                      bool alias_allowed) {
  if (!numpy().attr("shares_memory")(out, input).cast<bool>()) return;
  if (alias_allowed && out.data() == input.data() && out.itemsize() == input.itemsize() &&
      shape_of(out) == shape_of(input)) {
    bool same_strides = true;
    for (py::ssize_t i = 0; i < out.ndim(); ++i) same_strides &= out.shape(i) == 1 || out.strides(i) == input.strides(i);
    if (same_strides) return;
  }
  throw py::value_error(std::string("`") + out_name + "` overlaps `" + input_name + "`" +
                        (alias_allowed ? std::string(" without being laid out exactly as it; pass `") + input_name +
                                             "` itself for an in-place result, or a separate array"
                                       : std::string("; pass a separate array")));
}

}  // namespace logitloss
