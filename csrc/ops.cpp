// Every schema of the `companion` op library, in one place (torch.ops.companion.*).
//
// Kernels register against these schemas with TORCH_LIBRARY_IMPL(companion, CPU | CUDA) in
// csrc/cpu/<family>.cpp and csrc/cuda/<family>.cu; fake (meta) kernels and autograd are registered from
// Python in common/ops/<family>.py.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(companion, m) {
  // Log-sum-exp over the last dim: x [N, V] -> lse [N], lse[n] = log(sum_v exp(x[n, v])).
  m.def("logsumexp(Tensor x) -> Tensor");
  // grad_x [N, V] = grad[:, None] * exp(x - lse[:, None]); rows with lse = -inf get zero gradient.
  m.def("logsumexp_backward(Tensor grad, Tensor x, Tensor lse) -> Tensor");

  // --- family 1: fused linear log-probs and DPO (csrc/cpu/dpo.cpp, common/ops/dpo.py) ---

  // --- family 2: per-sample gradient projection (csrc/cpu/grad_projection.cpp, common/ops/grad_projection.py) ---

  // --- family 3: sparse parity (csrc/cpu/sparse_parity.cpp, common/ops/sparse_parity.py) ---
}

// `import common._C` only has to load this shared library so that the registrations above run; the
// module itself is empty (ops are reached through torch.ops.companion).
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",     // m_name
      nullptr,  // m_doc
      -1,       // m_size
      nullptr,  // m_methods
  };
  return PyModule_Create(&module_def);
}
