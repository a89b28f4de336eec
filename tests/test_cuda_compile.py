"""Every csrc/cuda/*.cu compiles with nvcc against the installed torch headers (sm_90), also on CPU-only
machines where the extension is built without them. Skipped only when no nvcc is found.

The flags mirror what torch.utils.cpp_extension.BuildExtension passes for a CUDAExtension
(COMMON_NVCC_FLAGS, -std=c++20, TORCH_EXTENSION_NAME, the C++ ABI), plus C10_CUDA_NO_CMAKE_CONFIGURE_FILE
because a CPU build of torch ships no c10/cuda/impl/cuda_cmake_macros.h. Files compile in parallel; a
warning that points into csrc/ fails the test too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torch.utils import cpp_extension

ROOT = Path(__file__).resolve().parents[1]
CUDA_SOURCES = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
INCLUDE_DIRS = ("include", "host")  # as setup.py: torch-free math headers, ATen-side checks and planners


def _find_nvcc() -> str | None:
    candidates = [shutil.which("nvcc")]
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            candidates.append(str(Path(os.environ[env]) / "bin" / "nvcc"))
    candidates.append("/usr/local/cuda/bin/nvcc")
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


NVCC = _find_nvcc()


def _nvcc_command(source: Path, out_dir: Path) -> list[str]:
    python_include = sysconfig.get_paths()["include"]
    csrc_includes = [str(ROOT / "csrc" / d) for d in INCLUDE_DIRS]
    includes = [*cpp_extension.include_paths(), python_include, *csrc_includes]
    return [
        NVCC,
        "-c",
        str(source),
        "-o",
        str(out_dir / f"{source.stem}.o"),
        *(f"-I{path}" for path in includes),
        "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE",
        "-std=c++20",
        "-gencode",
        "arch=compute_90,code=sm_90",
        *cpp_extension.COMMON_NVCC_FLAGS,
        "-DTORCH_EXTENSION_NAME=_C",
        "-DTORCH_API_INCLUDE_EXTENSION_H",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        "--compiler-options",
        "-fPIC",
        "-O3",
    ]


def _compile(source: Path, out_dir: Path) -> tuple[Path, subprocess.CompletedProcess]:
    proc = subprocess.run(_nvcc_command(source, out_dir), capture_output=True, text=True, timeout=300)
    return source, proc


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
def test_cuda_sources_compile(tmp_path):
    assert CUDA_SOURCES, "no csrc/cuda/*.cu files found"
    workers = max(1, min(len(CUDA_SOURCES), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda src: _compile(src, tmp_path), CUDA_SOURCES))
    failures = [
        f"{src.relative_to(ROOT)} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        for src, proc in results
        if proc.returncode != 0
    ]
    assert not failures, "nvcc failed:\n" + "\n".join(failures)
    # Warnings in our own sources fail the test; warnings from torch's headers are not ours to fix.
    ours = [
        line
        for _, proc in results
        for line in (proc.stdout + proc.stderr).splitlines()
        if "warning" in line.lower() and str(ROOT / "csrc") in line
    ]
    assert not ours, "nvcc warnings in csrc/:\n" + "\n".join(ours)
    for src, _ in results:
        assert (tmp_path / f"{src.stem}.o").stat().st_size > 0
