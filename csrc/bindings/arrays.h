// Binding helpers shared by every kernel family: turning Python arguments into validated NumPy
// arrays and layouts, and results back into what NumPy users expect. Python headers live only
// under csrc/bindings/.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "drivers/array_call.h"

namespace logitloss {
namespace py = pybind11;

// np.asarray(obj) for a real or boolean numeric argument (ml_dtypes.bfloat16 included); TypeError
// naming `name` for complex, object, string, datetime, other 2-byte void and other dtypes (and
// NumPy's own conversion errors, e.g. a ragged list, re-raised with `name` in front).
py::array as_numeric_array(py::handle obj, const char* name);

// ml_dtypes.bfloat16, recognised by its properties (a 2-byte void dtype named "bfloat16") so that
// logitloss never imports ml_dtypes: without it no array can have this dtype.
bool is_bfloat16(const py::dtype& dt);
// A floating dtype the kernels accept: float16/32/64, longdouble, bfloat16.
bool is_floating(const py::dtype& dt);

// A bool argument (keepdims, return_grad ...): what Python's truth test accepts for bool, None and
// numbers; TypeError naming `name` otherwise (a str, an array of several elements).
bool as_flag(py::handle obj, const char* name);

// An integer argument (not bool) as int64: TypeError naming `name` if it is not an integer,
// ValueError if it does not fit.
int64_t as_int64(py::handle obj, const char* name);

// The floating dtype of a result: float16/32/64, bfloat16 (and longdouble) stay; bool and integers
// become float64 (SciPy's rule: result_type forced to floating).
py::dtype floating_dtype(const py::dtype& dt);
// numpy.result_type(a, b) forced to floating.
py::dtype floating_result_type(const py::array& a, const py::array& b);

// The dtype the kernels compute in for a result dtype: float32 for float16, bfloat16 and float32,
// float64 otherwise.
DType compute_dtype(const py::dtype& result);
py::dtype numpy_dtype(DType d);

// arr as `dt` (no copy when it already is); narrowing rounds to nearest even (bfloat16: ml_dtypes'
// cast, nan stays nan) and beyond the range to +-inf silently.
py::array cast_to(const py::array& arr, const py::dtype& dt);
// dst[...] = src in dst's dtype (an out= / grad_out= narrower than the compute dtype), rounding
// as cast_to does.
void copy_rounded(const py::array& dst, const py::array& src);

// SciPy's axis argument: None (all axes), an int or a tuple of ints, negative allowed. Raises
// numpy's AxisError when out of range, ValueError when repeated, TypeError when not integers.
AxisFlags reduced_axes(py::handle axis, int ndim, const char* name = "axis");

AxisSizes shape_of(const py::array& a);
py::tuple as_tuple(const AxisSizes& shape);

// A new, uninitialized array of `dt` and like's shape, with like's memory order when like's axes
// are not in C order (so reductions along the same axis walk both the same way). C-ordered ones
// may be reused buffers (output_buffers.h).
struct NewArray {
  py::array array;
  bool fresh;  // its pages were never written, so the first stores fault (see stream_output)
};
NewArray empty_like_layout(const py::array& like, const py::dtype& dt);

// A 0-d array becomes a NumPy scalar (np.float32(...) for float32), as NumPy reductions return.
py::object scalar_if_0d(const py::array& a);

// `out=` / `grad_out=` argument checks: exact shape, dtype and writeability. Raises naming `name`.
void check_output_array(const py::array& out, const AxisSizes& shape, const py::dtype& dt,
                        const char* name);

// An output the kernels write while reading `input` must not share memory with it: a partial
// overlap (a shifted or transposed view) would be read after it was written. ValueError naming
// both. With alias_allowed, the one exception is `out` laid out exactly as `input` (an in-place
// result: every element is read before it is written, at the same address).
void check_no_overlap(const py::array& out, const char* out_name, const py::array& input, const char* input_name,
                      bool alias_allowed);

}  // namespace logitloss
