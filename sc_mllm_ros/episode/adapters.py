"""The released adapters on disk: one versioned directory each, a LATEST pointer, a release record.

Used by the learner (write) and by the model server and a restarted learner (newest, load) alike.
What the model writes inside a version is its own business (``SCMLLM.save_adapter``/``load_adapter``):
this store never reads the model's file names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil

ADAPTER = "adapter"  # the model's save_adapter target inside a version directory
RELEASE = "release.json"
LATEST = "LATEST"


class AdapterStore:
    """Adapters under ``root``: ``v{N:05d}/`` (adapter + ``release.json``), ``LATEST`` naming the newest.

    A version is written aside and renamed into place, then LATEST is replaced atomically, so a reader
    (or a crash) never sees half a release.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, version: int) -> Path:
        return self.root / f"v{version:05d}"

    def write(self, model, version: int, release: dict) -> Path:
        """Save ``model``'s adapter as ``version`` with its release record; point LATEST at it."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(version)
        tmp = self.root / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model.save_adapter(tmp / ADAPTER)
        (tmp / RELEASE).write_text(json.dumps(release, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        latest_tmp = self.root / f".{LATEST}.tmp-{os.getpid()}"
        latest_tmp.write_text(final.name)
        os.replace(latest_tmp, self.root / LATEST)
        return final

    def newest(self) -> tuple[int, Path] | None:
        """The newest release (version, directory), or None."""
        try:
            name = (self.root / LATEST).read_text().strip()
        except FileNotFoundError:
            return None
        return int(name.lstrip("v")), self.root / name

    @staticmethod
    def load(model, path: str | Path) -> None:
        """Load the adapter released in directory ``path`` into ``model``."""
        model.load_adapter(Path(path) / ADAPTER)

    @staticmethod
    def release(path: str | Path) -> dict:
        """The release record of the version in directory ``path``."""
        return json.loads((Path(path) / RELEASE).read_text())
