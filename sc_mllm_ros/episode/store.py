"""Durable stores over SQLite (WAL, full sync): episodes and the corrected samples the learner learns.

Every write is one committed transaction, so a crash loses nothing that was acknowledged; several
processes (policy, checker, correction service, learner) may open the same file at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import io
import json
from pathlib import Path
import sqlite3
import threading
import time
import uuid

import numpy as np

from sc_mllm_ros.episode.record import Attempt, EpisodeRecord, Frame
from sc_mllm_ros.geometry import CameraIntrinsics

_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    created REAL NOT NULL,
    task TEXT NOT NULL,
    object_name TEXT NOT NULL,
    frame BLOB NOT NULL,
    intrinsics TEXT NOT NULL,
    attempts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    created REAL NOT NULL,
    episode_id TEXT NOT NULL,
    rgb BLOB NOT NULL,
    fields TEXT NOT NULL,
    learned_version INTEGER
);
"""


def _pack(**arrays: np.ndarray) -> bytes:
    # Uncompressed: a frame's noisy float depth hardly compresses (-22 % for 4-11 ms of zlib per frame, which
    # sat between the answer and its publication); np.load reads compressed blobs of older stores alike.
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob)) as z:
        return {k: z[k] for k in z.files}


class _SQLite:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the threads of this process, serialised by a lock.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)

    def _write(self, sql: str, params: tuple) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class EpisodeStore(_SQLite):
    """Episodes by id: the frame the policy saw and the list of attempts, updated as they happen."""

    def add(self, rec: EpisodeRecord) -> None:
        f = rec.frame
        self._write(
            "INSERT INTO episodes (id, created, task, object_name, frame, intrinsics, attempts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                rec.episode_id,
                rec.created,
                rec.task,
                rec.object_name,
                _pack(rgb=f.rgb, depth=f.depth.astype(np.float32)),
                json.dumps(f.intrinsics.to_dict()),
                json.dumps([a.to_dict() for a in rec.attempts]),
            ),
        )

    def set_attempts(self, episode_id: str, attempts: list[Attempt]) -> None:
        self._write(
            "UPDATE episodes SET attempts = ? WHERE id = ?",
            (json.dumps([a.to_dict() for a in attempts]), episode_id),
        )

    def get(self, episode_id: str = "") -> EpisodeRecord | None:
        """The episode ``episode_id``; the latest one when it is empty; None when there is none."""
        cols = "id, created, task, object_name, frame, intrinsics, attempts"
        if episode_id:
            rows = self._read(f"SELECT {cols} FROM episodes WHERE id = ?", (episode_id,))
        else:
            rows = self._read(f"SELECT {cols} FROM episodes ORDER BY seq DESC LIMIT 1")
        if not rows:
            return None
        eid, created, task, obj, frame, intr, attempts = rows[0]
        arrays = _unpack(frame)
        return EpisodeRecord(
            episode_id=eid,
            task=task,
            object_name=obj,
            created=created,
            frame=Frame(arrays["rgb"], arrays["depth"], CameraIntrinsics(**json.loads(intr))),
            attempts=[Attempt.from_dict(a) for a in json.loads(attempts)],
        )

    def __len__(self) -> int:
        return self._read("SELECT COUNT(*) FROM episodes")[0][0]


@dataclass
class StoredSample:
    """A successfully corrected attempt, ready to become the model's training samples."""

    episode_id: str
    object_name: str
    rgb: np.ndarray
    contact: tuple[int, int]
    up: list[float]
    forward: list[float]
    hint_contact: tuple[int, int] | None = None
    hint_up: list[float] | None = None
    hint_forward: list[float] | None = None
    feedback: str = ""
    sample_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)

    @classmethod
    def from_attempt(cls, record: EpisodeRecord, attempt: Attempt) -> StoredSample:
        """The sample of a corrected ``attempt`` of ``record``: its answer, its hints, the initial image."""
        return cls(
            record.episode_id,
            record.object_name,
            record.frame.rgb,
            attempt.contact,
            attempt.up,
            attempt.forward,
            attempt.hint_contact,
            attempt.hint_up,
            attempt.hint_forward,
            attempt.feedback,
        )

    def _fields(self) -> dict:
        d = asdict(self)
        for key in ("rgb", "sample_id", "created", "episode_id"):
            d.pop(key)
        return d


class SampleStore(_SQLite):
    """Append-only corrected samples; the learner marks which adapter version learned each one."""

    def add(self, s: StoredSample) -> str:
        self._write(
            "INSERT INTO samples (id, created, episode_id, rgb, fields) VALUES (?, ?, ?, ?, ?)",
            (s.sample_id, s.created, s.episode_id, _pack(rgb=s.rgb), json.dumps(s._fields())),
        )
        return s.sample_id

    def _rows(self, where: str, params: tuple = ()) -> list[StoredSample]:
        cols = "id, created, episode_id, rgb, fields"
        rows = self._read(f"SELECT {cols} FROM samples {where} ORDER BY seq", params)
        out = []
        for sid, created, eid, rgb, fields in rows:
            d = json.loads(fields)
            for key in ("contact", "hint_contact"):
                if d.get(key) is not None:
                    d[key] = tuple(d[key])
            rgb_array = _unpack(rgb)["rgb"]
            out.append(StoredSample(episode_id=eid, rgb=rgb_array, sample_id=sid, created=created, **d))
        return out

    def list_all(self) -> list[StoredSample]:
        return self._rows("")

    def unlearned(self) -> list[StoredSample]:
        return self._rows("WHERE learned_version IS NULL")

    def mark_learned(self, sample_ids: list[str], version: int) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "UPDATE samples SET learned_version = ? WHERE id = ?", [(version, sid) for sid in sample_ids]
            )
            self._conn.execute("COMMIT")

    def __len__(self) -> int:
        return self._read("SELECT COUNT(*) FROM samples")[0][0]
