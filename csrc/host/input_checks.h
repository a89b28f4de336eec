// Argument checks that every kernel family shares: where a tensor lives and which dtype it has.
//
// Host-only (ATen and TORCH_CHECK): included by csrc/cpu/*.cpp and by the host code of csrc/cuda/*.cu, never
// by the torch-free kernel headers. The messages are the ones the ops have always raised (tests match them):
//   check_device_type(t, kCPU, op, "x")   "<op>: x must be a CPU tensor, got cuda:0"   (any CPU / CUDA device)
//   check_placed(t, device, op, "w")      a CPU kernel passes at::kCPU: the message above; a CUDA kernel passes
//                                         the device of the op's first tensor: "<op>: w must be on cuda:0,
//                                         got cuda:1" (index included: no kernel reads across devices)
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/DeviceType.h>
#include <c10/util/Exception.h>

namespace companion {

inline void check_device_type(const at::Tensor& t, c10::DeviceType type, const char* op, const char* name) {
  TORCH_CHECK(t.device().type() == type, op, ": ", name, " must be a ", c10::DeviceTypeName(type),
              " tensor, got ", t.device());
}

inline void check_placed(const at::Tensor& t, const at::Device& device, const char* op, const char* name) {
  if (device.is_cpu()) {
    check_device_type(t, c10::DeviceType::CPU, op, name);
    return;
  }
  TORCH_CHECK(t.device() == device, op, ": ", name, " must be on ", device, ", got ", t.device());
}

inline void check_same_dtype(const at::Tensor& t, const at::Tensor& like, const char* op, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == like.scalar_type(), op, ": ", name, " must have dtype ",
                   like.scalar_type(), ", got ", t.scalar_type());
}

}  // namespace companion
