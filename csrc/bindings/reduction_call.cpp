#include "bindings/reduction_call.h"

#include <stdexcept>

namespace logitloss {

ReductionCall::ReductionCall(DType dtype, const AxisSizes& shape, const AxisFlags& reduced)
    : dtype_(dtype), shape_(shape), reduced_(reduced) {
  operands_.reserve(kInlineOperands);
}

int ReductionCall::add_input(const py::array& a) {
  operands_.push_back({a, py::object(), false, false, false});
  return (int)operands_.size() - 1;
}

int ReductionCall::add_output(const py::array& a, bool fresh) {
  operands_.push_back({a, py::object(), true, false, fresh});
  return (int)operands_.size() - 1;
}

int ReductionCall::add_per_row_input(const py::array& a) {
  operands_.push_back({a, py::object(), false, true, false});
  return (int)operands_.size() - 1;
}

int ReductionCall::add_per_row_output(const py::array& a) {
  operands_.push_back({a, py::object(), true, true, true});
  return (int)operands_.size() - 1;
}

AxisSizes ReductionCall::operand_strides(const Operand& op) const {
  const py::array& a = op.array;
  AxisSizes strides(shape_.size());
  if (op.per_row) {  // kept axes only, in order; stride 0 along the reduced ones
    size_t k = 0;
    for (size_t i = 0; i < shape_.size(); ++i) strides[i] = reduced_[i] ? 0 : a.strides(k++);
    return strides;
  }
  for (size_t i = 0; i < shape_.size(); ++i) strides[i] = (a.shape(i) == 1 && shape_[i] != 1) ? 0 : a.strides(i);
  return strides;
}

// An array of the operand's shape whose memory holds the kept axes first and the reduced axes
// last, C-ordered: its reduced axes always chain.
py::array ReductionCall::permuted_copy(const py::array& a, bool copy_data) const {
  py::list order, inverse(shape_.size());
  std::vector<int> perm;
  for (size_t i = 0; i < shape_.size(); ++i) if (!reduced_[i]) perm.push_back((int)i);
  for (size_t i = 0; i < shape_.size(); ++i) if (reduced_[i]) perm.push_back((int)i);
  for (size_t i = 0; i < perm.size(); ++i) {
    order.append(perm[i]);
    inverse[perm[i]] = py::int_(i);
  }
  py::module_ np = py::module_::import("numpy");
  py::object transposed = a.attr("transpose")(py::tuple(order));
  py::object fresh = copy_data ? np.attr("ascontiguousarray")(transposed) : np.attr("empty_like")(transposed, py::arg("order") = "C");
  return py::reinterpret_steal<py::array>(fresh.attr("transpose")(py::tuple(inverse)).release());
}

ArrayCall ReductionCall::finish() {
  auto all_strides = [&] {
    OperandStrides s;
    for (const auto& op : operands_) s.push_back(operand_strides(op));
    return s;
  };
  ArrayCall call{dtype_, ReductionLayout{}, {}, {}};
  if (!make_reduction_layout(shape_, all_strides(), reduced_, call.layout)) {
    for (auto& op : operands_) {
      ReductionLayout single;
      if (make_reduction_layout(shape_, {operand_strides(op)}, reduced_, single)) continue;
      if (op.output) op.write_back = op.array;
      op.array = permuted_copy(op.array, !op.output);
      op.fresh = op.output;
    }
    if (!make_reduction_layout(shape_, all_strides(), reduced_, call.layout)) {
      throw std::logic_error("logitloss: internal error: reduction layout failed after copies");
    }
  }
  for (auto& op : operands_) {
    call.base.push_back(static_cast<char*>(const_cast<void*>(op.array.data())));
    call.fresh.push_back(op.fresh);
  }
  return call;
}

void ReductionCall::write_back() {
  for (auto& op : operands_) {
    if (op.write_back) py::module_::import("numpy").attr("copyto")(op.write_back, op.array);
  }
}

}  // namespace logitloss
