"""Atomic file writes: a reader (or a rerun after Ctrl-C / kill) sees the old file or the new one, never half.

Every result file in this project is written through these helpers: the bytes go to a temporary file in the
same directory, are flushed and fsync'ed, and the temporary file is renamed over the target (`os.replace`
is atomic on POSIX within one file system).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON (NaN/inf become null) atomically."""
    return atomic_write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: str | os.PathLike, writer: Callable[[io.BufferedIOBase], None]) -> Path:
    """Atomically write what `writer(handle)` writes to a binary handle (np.savez, torch.save, savefig)."""
    buffer = io.BytesIO()
    writer(buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by `atomic_write_json`."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def remove_stale_temporaries(directory: str | os.PathLike) -> int:
    """Delete temporaries left by a process killed mid-write; returns how many were removed."""
    directory = Path(directory)
    if not directory.exists():
        return 0
    stale = [p for p in directory.rglob(f"{TMP_PREFIX}*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def json_safe(obj: Any) -> Any:
    """Convert numpy/torch scalars and arrays to plain Python; non-finite floats to None (strict JSON)."""
    import math

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if hasattr(obj, "tolist"):  # numpy / torch arrays and scalars
        return json_safe(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write an object of type {type(obj).__name__} as JSON")
