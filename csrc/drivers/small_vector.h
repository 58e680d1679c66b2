// A vector that keeps up to N elements in place and moves to the heap only beyond that. A call's
// shapes, strides and operand lists have a handful of entries each; held in std::vector they cost
// a tiny call (32 x 10 logits, a few microseconds) some 25 malloc/free pairs, a fifth of its time.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <utility>

namespace logitloss {

template <class T, size_t N>
class SmallVector {
 public:
  SmallVector() = default;
  SmallVector(const SmallVector& other) { *this = other; }
  SmallVector(SmallVector&& other) noexcept { *this = std::move(other); }
  SmallVector& operator=(const SmallVector& other) {
    if (this == &other) return *this;
    clear();
    for (const T& v : other) push_back(v);
    return *this;
  }
  SmallVector& operator=(SmallVector&& other) noexcept {
    if (this == &other) return *this;
    clear();
    if (other.heap_) {
      heap_ = std::move(other.heap_);
      capacity_ = other.capacity_;
    } else {
      for (size_t i = 0; i < other.size_; ++i) inline_[i] = std::move(other.inline_[i]);
    }
    size_ = other.size_;
    other.clear();
    return *this;
  }
  explicit SmallVector(size_t n, const T& value = T()) { assign(n, value); }
  SmallVector(std::initializer_list<T> values) : SmallVector(values.begin(), values.end()) {}
  template <class It, class = std::enable_if_t<!std::is_integral<It>::value>>  // not (count, value)
  SmallVector(It first, It last) {
    for (; first != last; ++first) push_back(*first);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return heap_ ? heap_.get() : inline_; }
  const T* data() const { return heap_ ? heap_.get() : inline_; }
  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T& back() { return data()[size_ - 1]; }
  const T& back() const { return data()[size_ - 1]; }

  void push_back(T value) {
    if (size_ == capacity_) grow();
    data()[size_++] = std::move(value);
  }
  // Removed elements are not destroyed until overwritten: fine for the plain values and nested
  // SmallVectors held here, not for types that own resources.
  void pop_back() { --size_; }
  void clear() {
    heap_.reset();
    capacity_ = N;
    size_ = 0;
  }
  void assign(size_t n, T value) {  // by value: `value` may be one of this vector's elements
    clear();
    for (size_t i = 0; i < n; ++i) push_back(value);
  }

  friend bool operator==(const SmallVector& a, const SmallVector& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!(a[i] == b[i])) return false;
    }
    return true;
  }
  friend bool operator!=(const SmallVector& a, const SmallVector& b) { return !(a == b); }

 private:
  void grow() {
    std::unique_ptr<T[]> larger(new T[2 * capacity_]);
    for (size_t i = 0; i < size_; ++i) larger[i] = std::move(data()[i]);
    heap_ = std::move(larger);
    capacity_ *= 2;
  }

  T inline_[N] = {};
  size_t size_ = 0;
  size_t capacity_ = N;
  std::unique_ptr<T[]> heap_;  // all elements once more than N were held
};

}  // namespace logitloss
