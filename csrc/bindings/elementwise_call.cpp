#include "bindings/elementwise_call.h"

#include <string>

namespace logitloss {

bool broadcasts_to(const AxisSizes& from, const AxisSizes& to) {
  if (from.size() > to.size()) return false;
  const size_t offset = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i] != 1 && from[i] != to[offset + i]) return false;
  }
  return true;
}

int ElementwiseCall::add(const py::array& a, const char* name) {
  const AxisSizes shape = shape_of(a);
  if (!broadcasts_to(shape, shape_)) {
    throw py::value_error(std::string("`") + name + "` of shape " + py::str(as_tuple(shape)).cast<std::string>() +
                          " does not broadcast to the input's shape " + py::str(as_tuple(shape_)).cast<std::string>());
  }
  // Aligned to the right; missing leading dims and broadcast dims of length 1 get stride 0.
  AxisSizes strides(shape_.size(), 0);
  const size_t offset = shape_.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == shape_[offset + i]) strides[offset + i] = a.strides((py::ssize_t)i);
  }
  arrays_.push_back(a);
  strides_.push_back(std::move(strides));
  bases_.push_back(static_cast<char*>(const_cast<void*>(a.data())));
  return (int)arrays_.size() - 1;
}

}  // namespace logitloss
