"""Atomic checkpoints: write a temp file (or folder) beside the target, fsync, rename over the old one.

A crash mid-save leaves the previous checkpoint untouched (a stray ``.tmp-*`` at worst), so the last good
one stays loadable.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
import shutil
import tempfile

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


def atomic_write_dir(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_dir)`` then swap the folder in for ``path`` (a model or peft adapter folder).

    Readers see the old folder or the new one, never a mix of their files; only a crash between the two
    renames leaves ``path`` absent (the old folder is then the ``.old-*`` beside it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's private 0700 would ship as the folder's mode
        for f in tmp.iterdir():
            f.chmod(0o666 & ~umask)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent)) / path.name
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)


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
