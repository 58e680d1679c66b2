// The extension module logitloss._core: configuration (ISA dispatch, threads, output reuse), the test-only
// math helper, and each kernel family's entry points (bind_* in the sibling files).
#include <limits>
#include <stdexcept>
#include <string>

#include "bindings/arrays.h"
#include "bindings/output_buffers.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace logitloss {

void bind_softmax_family(py::module_& m);
void bind_cross_entropy(py::module_& m);
void bind_binary_cross_entropy(py::module_& m);
void bind_softmax_statistics(py::module_& m);
void bind_temperature_terms(py::module_& m);
void bind_c_api(py::module_& m);
void bind_divergence(py::module_& m);

namespace {

py::array eval_math(const std::string& isa, const std::string& function, const py::array& x) {
  const KernelTable* table = nullptr;
  for (const auto& t : compiled_targets()) {
    if (t.name == isa && t.supported) table = t.table();
  }
  if (!table) throw py::value_error("`isa`: '" + isa + "' is not a compiled target this CPU supports");
  MathFunction f;
  if (function == "exp") f = MathFunction::kExp;
  else if (function == "exp_nonpositive") f = MathFunction::kExpNonpositive;
  else if (function == "exp_sum_term") f = MathFunction::kExpSumTerm;
  else if (function == "log") f = MathFunction::kLog;
  else if (function == "log1p") f = MathFunction::kLog1p;
  else if (function == "log1p_unit_interval") f = MathFunction::kLog1pUnitInterval;
  else if (function == "tanh") f = MathFunction::kTanh;
  else if (function == "sech_squared") f = MathFunction::kSechSquared;
  else throw py::value_error("`func` must be 'exp', 'exp_nonpositive', 'exp_sum_term', 'log', 'log1p', 'log1p_unit_interval', 'tanh' or 'sech_squared', got '" + function + "'");
  if (x.ndim() != 1 || !(x.flags() & py::array::c_style)) throw py::value_error("`x` must be 1-d and contiguous");
  py::array out(x.dtype(), std::vector<int64_t>{x.shape(0)});
  if (x.dtype().equal(py::dtype::of<float>())) {
    table->math_f32(f, static_cast<const float*>(x.data()), x.shape(0), static_cast<float*>(out.mutable_data()));
  } else if (x.dtype().equal(py::dtype::of<double>())) {
    table->math_f64(f, static_cast<const double*>(x.data()), x.shape(0), static_cast<double*>(out.mutable_data()));
  } else {
    throw py::type_error("`x` must be float32 or float64");
  }
  return out;
}

py::dict config() {
  py::dict d;
  py::list compiled, supported;
  for (const auto& t : compiled_targets()) {
    compiled.append(t.name);
    if (t.supported) supported.append(t.name);
  }
  const DispatchState& s = dispatch_state();
  d["compiled"] = compiled;
  d["supported"] = supported;
  d["active"] = std::string(active_kernels().name);
  d["default"] = s.capped_to;
  d["cap"] = s.cap;
  d["cap_lowered"] = s.cap_lowered;
  d["num_threads"] = get_num_threads();
  const IdleBuffers idle = idle_buffers();
  d["output_reuse"] = output_reuse();
  d["idle_buffers"] = idle.count;
  d["idle_buffer_bytes"] = idle.bytes;
  return d;
}

}  // namespace

}  // namespace logitloss

PYBIND11_MODULE(_core, m) {
  namespace ll = logitloss;
  m.doc() = "logitloss compiled kernels (private: use the logitloss package)";
  // The package calls this first thing at import with LOGITLOSS_ISA (an exception thrown from
  // module initialization itself would reach the user as ImportError, not ValueError).
  m.def("_initialize_dispatch", [](const std::string& cap) {
    try {
      ll::initialize_dispatch(cap.c_str());
    } catch (const std::invalid_argument& e) {
      throw pybind11::value_error(e.what());
    }
  });
  m.def("_config", &ll::config);
  m.def("_set_isa", [](pybind11::handle name) {
    if (!pybind11::isinstance<pybind11::str>(name)) {
      throw pybind11::type_error("`name` must be a str naming an ISA target, got " + pybind11::repr(name).cast<std::string>());
    }
    try {
      ll::set_active_isa(name.cast<std::string>());
    } catch (const std::invalid_argument& e) {
      throw pybind11::value_error(std::string("`name`: ") + e.what());
    }
  });
  m.def("get_num_threads", &ll::get_num_threads);
  m.def("set_num_threads", [](pybind11::handle n_obj) {
    // Any integer >= 1 (not a bool); counts above kMaxThreads, however large, are capped there.
    if (pybind11::isinstance<pybind11::bool_>(n_obj) || !PyIndex_Check(n_obj.ptr())) {
      throw pybind11::type_error("`n` must be an integer, got " + pybind11::repr(n_obj).cast<std::string>());
    }
    const pybind11::int_ n = pybind11::reinterpret_steal<pybind11::int_>(PyNumber_Index(n_obj.ptr()));
    if (!n) {
      pybind11::error_already_set error;
      if (error.matches(PyExc_TypeError)) {
        throw pybind11::type_error("`n` must be an integer, got " + pybind11::repr(n_obj).cast<std::string>());
      }
      throw error;
    }
    const auto greater = [&](int bound) {
      const int r = PyObject_RichCompareBool(n.ptr(), pybind11::int_(bound).ptr(), Py_GT);
      if (r < 0) throw pybind11::error_already_set();
      return r == 1;
    };
    if (!greater(0)) {
      throw pybind11::value_error("`n` must be an integer >= 1 (threads), got " + pybind11::repr(n).cast<std::string>());
    }
    ll::set_num_threads(greater(ll::kMaxThreads) ? ll::kMaxThreads : n.cast<int>());
  }, pybind11::arg("n"));
  m.def("_set_output_reuse", [](bool enabled) { ll::set_output_reuse(enabled); }, pybind11::arg("enabled"));
  m.def("_release_output_buffers", &ll::release_idle_buffers);
  m.def("_eval_math", &ll::eval_math, pybind11::arg("isa"), pybind11::arg("func"), pybind11::arg("x"));
  ll::bind_softmax_family(m);
  ll::bind_cross_entropy(m);
  ll::bind_binary_cross_entropy(m);
  ll::bind_softmax_statistics(m);
  ll::bind_temperature_terms(m);
  ll::bind_c_api(m);
  ll::bind_divergence(m);
}
