// Arguments every loss function shares (cross_entropy, binary_cross_entropy_with_logits): the
// `reduction` name, the gradient output (`grad_out=`, possibly the input itself), and the reduced
// loss returned as a NumPy scalar.
#pragma once

#include <initializer_list>

#include "bindings/arrays.h"

namespace logitloss {

// torch's reduction names; TypeError for a non-string, ValueError naming `reduction` otherwise.
LossReduction parse_reduction(py::handle reduction);

// Where the driver writes the gradient: the caller's grad_out (validated; written in place when it
// has the compute dtype, else through a temporary), or a fresh array laid out like the input.
struct GradientTarget {
  py::object compute;  // what the driver writes (a numpy array of the compute dtype)
  py::object user;     // grad_out, when given
  bool fresh = false;  // `compute` was allocated here and its pages never written (NewArray)
};

// An array the kernels read while they write the gradient, named for error messages (null: absent).
struct ReadOperand {
  py::object array;
  const char* name;
};

// input: the input in the compute dtype. grad_out may be laid out exactly as the input (an in-place
// gradient); any other overlap with the input or with `others` is a ValueError.
GradientTarget gradient_target(const py::array& input, const AxisSizes& shape, const py::dtype& result_dtype,
                               const py::dtype& compute_dtype, py::handle grad_out,
                               std::initializer_list<ReadOperand> others);

// As gradient_target for any logits-shaped output named `name` (hessian_out=): an alias of the
// input only where input_alias_allowed.
GradientTarget output_target(const py::array& input, const AxisSizes& shape, const py::dtype& result_dtype,
                             const py::dtype& compute_dtype, py::handle out_obj, const char* name, bool input_alias_allowed,
                             std::initializer_list<ReadOperand> others);

// Where the Hessian's diagonal goes (hessian_out=, or a fresh array): output_target's rules with
// no alias of the input allowed, and no overlap with the caller's input (input_obj, as given) or
// grad_out either.
GradientTarget hessian_target(py::handle input_obj, const py::array& input, const AxisSizes& shape,
                              const py::dtype& result_dtype, const py::dtype& compute_dtype, py::handle hessian_out,
                              const GradientTarget& grad, std::initializer_list<ReadOperand> others);

// The gradient in the result dtype: grad_out itself when given, else the computed array.
py::object finish_gradient(GradientTarget& target, const py::dtype& result_dtype);

// A reduced loss as a NumPy scalar of the result dtype, rounded once to the compute dtype and then
// to the result dtype (to +-inf beyond its range, without NumPy's overflow warning: that is the
// correctly rounded value).
py::object reduced_loss_scalar(double value, DType compute, const py::dtype& result_dtype);

}  // namespace logitloss
