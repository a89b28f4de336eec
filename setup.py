"""Builds the kernel extension `common._C` from csrc/ (metadata lives in pyproject.toml).

    pip install --no-build-isolation -e .        # editable: the .so lands in common/ as common/_C*.so
    python setup.py build_ext --inplace          # fast rebuild while editing csrc/

CPU kernels (csrc/ops.cpp + csrc/cpu/*.cpp) are always built. The CUDA kernels (csrc/cuda/*.cu) are added,
making this a CUDAExtension, when the installed torch was built with CUDA and a CUDA toolkit is found
(torch.utils.cpp_extension.CUDA_HOME). COMPANION_CPU_ONLY=1 forces a CPU-only build.

torch's BuildExtension appends the -std=c++20 that the torch 2.13 headers require, and the usual
-DTORCH_EXTENSION_NAME=_C / -DTORCH_API_INCLUDE_EXTENSION_H defines. Ninja (a dependency) builds the
sources in parallel; MAX_JOBS limits it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = Path(__file__).resolve().parent
TORCH_LIB = Path(torch.__file__).resolve().parent / "lib"


def _sources(pattern: str) -> list[str]:
    # setuptools wants paths relative to the project root.
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(pattern))


def _with_cuda() -> bool:
    if os.environ.get("COMPANION_CPU_ONLY", "0") == "1":
        return False
    return torch.version.cuda is not None and CUDA_HOME is not None


def _extension():
    sources = ["csrc/ops.cpp", *_sources("csrc/cpu/*.cpp")]
    # at::parallel_for is an inline OpenMP region in torch's headers (ATen parallel backend: OpenMP), so the
    # extension compiles with -fopenmp and links libgomp, which resolves to the libgomp.so.1 torch ships
    # and has already loaded: one OpenMP thread pool, sized by torch.set_num_threads.
    # -fno-trapping-math lets GCC if-convert the float compares in the exp of the vectorized loops
    # (online_logsumexp.h); it drops only FP-exception-flag semantics, which nothing here reads.
    cxx_flags = ["-O3", "-fopenmp", "-fno-trapping-math", "-Wall", "-Wno-unknown-pragmas"]
    kwargs = dict(
        name="common._C",
        # csrc/include: the torch-free math headers of CPU and CUDA; csrc/host: ATen-side checks, planners.
        include_dirs=[str(ROOT / "csrc" / "include"), str(ROOT / "csrc" / "host")],
        # rpath to torch/lib: `import common._C` then finds libc10/libtorch even before `import torch`.
        extra_link_args=["-fopenmp", f"-Wl,-rpath,{TORCH_LIB}"],
    )
    if _with_cuda():
        return CUDAExtension(
            sources=sources + _sources("csrc/cuda/*.cu"),
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3"]},
            **kwargs,
        )
    return CppExtension(sources=sources, extra_compile_args={"cxx": cxx_flags}, **kwargs)


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
