// SmallVector<T, N>: a std::vector-like sequence that keeps up to N elements inline and moves to the
// heap only past that. ember's shapes and strides are SmallVector<int64_t, 6>: every op builds a few
// of them (the output's shape and strides, broadcast and expanded views), and with std::vector each
// was a malloc + free, about a fifth of a small op's time (perf on a 32x32 add). Rank <= 6 covers
// every tensor a model makes; a rank-16 view still works, on the heap.
//
// The subset of std::vector that the core uses: construction from a count, a range or a list,
// copy/move, push_back, insert, erase, resize, comparisons; iterators are plain pointers.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <type_traits>
#include <vector>

namespace ember {

template <typename T, int N>
class SmallVector {
  static_assert(std::is_trivially_copyable_v<T>, "SmallVector holds trivially copyable values (memcpy moves)");

 public:
  using value_type = T;
  using size_type = size_t;
  using iterator = T*;
  using const_iterator = const T*;
  using reverse_iterator = std::reverse_iterator<T*>;
  using const_reverse_iterator = std::reverse_iterator<const T*>;

  SmallVector() = default;
  explicit SmallVector(size_t n, T value = T()) { assign(n, value); }
  SmallVector(std::initializer_list<T> list) { assign(list.begin(), list.end()); }
  template <typename It, typename = typename std::iterator_traits<It>::iterator_category>
  SmallVector(It first, It last) { assign(first, last); }
  SmallVector(const std::vector<T>& v) { assign(v.begin(), v.end()); }  // NOLINT: implicit, as a Shape was a vector
  SmallVector(const SmallVector& o) { assign(o.begin(), o.end()); }
  SmallVector(SmallVector&& o) noexcept { take(o); }
  SmallVector& operator=(const SmallVector& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  SmallVector& operator=(SmallVector&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  ~SmallVector() { release(); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& front() { return data_[0]; }
  const T& front() const { return data_[0]; }
  T& back() { return data_[size_ - 1]; }
  const T& back() const { return data_[size_ - 1]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  const T* cbegin() const { return data_; }
  const T* cend() const { return data_ + size_; }
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

  void reserve(size_t n) {
    if (n <= capacity_) return;
    std::unique_ptr<T[]> grown(new T[n]);
    std::copy(data_, data_ + size_, grown.get());
    release();
    data_ = grown.release();
    capacity_ = n;
  }
  void clear() { size_ = 0; }
  void resize(size_t n, T value = T()) {
    reserve(n);
    if (n > size_) std::fill(data_ + size_, data_ + n, value);
    size_ = n;
  }
  void assign(size_t n, T value) {
    size_ = 0;
    resize(n, value);
  }
  template <typename It>
  void assign(It first, It last) {
    const size_t n = size_t(std::distance(first, last));
    size_ = 0;
    reserve(n);
    std::copy(first, last, data_);
    size_ = n;
  }
  void push_back(T value) {
    if (size_ == capacity_) reserve(2 * capacity_);
    data_[size_++] = value;
  }
  void emplace_back(T value) { push_back(value); }
  void pop_back() { --size_; }

  T* insert(const T* pos, T value) { return insert(pos, &value, &value + 1); }
  template <typename It>
  T* insert(const T* pos, It first, It last) {
    const size_t at = size_t(pos - data_), n = size_t(std::distance(first, last));
    reserve(size_ + n);
    std::copy_backward(data_ + at, data_ + size_, data_ + size_ + n);
    std::copy(first, last, data_ + at);
    size_ += n;
    return data_ + at;
  }
  T* erase(const T* pos) { return erase(pos, pos + 1); }
  T* erase(const T* first, const T* last) {
    T* at = data_ + (first - data_);
    std::copy(last, static_cast<const T*>(data_ + size_), at);
    size_ -= size_t(last - first);
    return at;
  }

  friend bool operator==(const SmallVector& a, const SmallVector& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const SmallVector& a, const SmallVector& b) { return !(a == b); }
  friend bool operator<(const SmallVector& a, const SmallVector& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  bool on_heap() const { return data_ != inline_; }
  void release() {
    if (on_heap()) delete[] data_;
    data_ = inline_;
    capacity_ = N;
    size_ = 0;
  }
  // Moves o's elements here (this holds nothing): a heap buffer changes hands, inline ones are copied.
  void take(SmallVector& o) {
    if (o.on_heap()) {
      data_ = o.data_, capacity_ = o.capacity_, size_ = o.size_;
      o.data_ = o.inline_, o.capacity_ = N;
    } else {
      std::memcpy(inline_, o.inline_, o.size_ * sizeof(T));
      size_ = o.size_;
    }
    o.size_ = 0;
  }

  T* data_ = inline_;
  size_t size_ = 0, capacity_ = N;
  T inline_[N];
};

}  // namespace ember
