"""Atomic safetensors checkpoints: write a temp file in the same folder, fsync, rename over the old file.

A crash mid-save leaves the previous file untouched (a stray ``.tmp-*`` file at worst), so the last good
checkpoint stays loadable.  Everything a load needs (config, tokenizer) rides in the safetensors metadata of
the
same file; the JSON files beside it are human-readable copies written the same way.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import os
from pathlib import Path
import tempfile

from safetensors import safe_open
from safetensors.torch import load_file, save_file
import torch


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then atomically move the temp file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(path, write)


def dedup_shared(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop tensors that share storage with an earlier one (tied embeddings); safetensors refuses them."""
    seen: dict[tuple[int, int, tuple], str] = {}
    out, dropped = {}, []
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key in seen:
            dropped.append(k)
            continue
        seen[key] = k
        out[k] = v.detach().contiguous()
    return out, dropped


def save_tensors(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, object]) -> None:
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return load_file(str(path)), meta
