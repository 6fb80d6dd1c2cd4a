// DLPack: the ABI structs of the DLPack specification (https://dmlc.github.io/dlpack, v1.0), written
// out here, and the conversions between ember::Array and the managed tensors. Zero copy both ways:
// an exported tensor holds a reference to the Array's storage; an imported one becomes a Storage
// whose deleter calls the producer's deleter exactly once.
#pragma once
#include <cstdint>
#include "core/array.h"

extern "C" {
struct DLDevice { int32_t device_type; int32_t device_id; };
struct DLDataType { uint8_t code; uint8_t bits; uint16_t lanes; };
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; may be NULL for compact row-major
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};
struct DLPackVersion { uint32_t major; uint32_t minor; };
struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
};
}

namespace ember::dlpack {

constexpr uint32_t kMajor = 1, kMinor = 0;
enum DeviceType : int32_t { kCPU = 1, kCUDA = 2, kCUDAHost = 3 };
enum TypeCode : uint8_t { kInt = 0, kUInt = 1, kFloat = 2, kBfloat = 4, kBool = 6 };
constexpr uint64_t kFlagReadOnly = 1, kFlagIsCopied = 2;

DLManagedTensor* to_legacy(const Array& a);
DLManagedTensorVersioned* to_versioned(const Array& a, bool copied);
Array from_legacy(DLManagedTensor* t);          // takes ownership
Array from_versioned(DLManagedTensorVersioned* t);
DLDevice device_of(const Array& a);

}  // namespace ember::dlpack
