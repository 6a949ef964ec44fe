"""The online learner's loop: corrected samples from the store -> adapter update -> EMA -> checkpoint.

It runs on its own thread with its own copy of the model, so serving never waits for training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import threading
import time

from sc_mllm_ros.episode.adapters import AdapterStore
from sc_mllm_ros.episode.store import SampleStore, StoredSample

log = logging.getLogger(__name__)

# How much nicer than serving the learning thread runs: on two cores an update must not slow answers.
LEARNER_NICENESS = 10


def lower_thread_priority(by: int = LEARNER_NICENESS) -> None:
    """Make the calling thread ``by`` steps nicer (Linux schedules threads, so serving threads keep theirs).

    Relative to the thread's niceness, never below it: a process started with ``nice`` stays as nice.
    With one torch intra-op thread (``nodes.CPU_ENV``) the thread itself does the update's arithmetic.
    """
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))


@dataclass(frozen=True)
class AdapterRelease:
    """A new adapter version on disk, ready to be hot-swapped in."""

    version: int
    path: str
    num_samples: int
    loss: float
    ema_decay: float
    update_s: float


def training_samples(s: StoredSample) -> list:
    """The model's training samples from one successful correction.

    The corrected answer becomes a pose-prompt sample (the policy should have answered it from the
    image alone) and, with the expert's hints, a correction-prompt sample.
    """
    from sc_mllm_ros.model import TrainingSample

    out = [TrainingSample("pose", s.rgb, s.object_name, s.contact, s.up, s.forward)]
    if s.hint_contact is not None:
        out.append(
            TrainingSample(
                "correction",
                s.rgb,
                s.object_name,
                s.contact,
                s.up,
                s.forward,
                hint_contact=s.hint_contact,
                hint_up=s.hint_up,
                hint_forward=s.hint_forward,
            )
        )
    return out


class LearnerWorker:
    """Learns every unlearned sample of ``store`` in the background and announces each new adapter.

    ``learner`` is the model core's ``OnlineLearner`` around a model that nothing else uses.
    """

    def __init__(
        self,
        learner,
        store: SampleStore,
        adapter_root: str | Path,
        on_release: Callable[[AdapterRelease], None],
        min_samples: int = 1,
        ema_decay: float = 0.0,
        base_version: int = 0,
    ) -> None:
        self.learner = learner
        self.store = store
        self.adapters = AdapterStore(adapter_root)
        self.on_release = on_release
        self.min_samples = min_samples
        self.ema_decay = ema_decay
        # versions continue from the adapter the learner started from (a restart never reuses a number)
        self.base_version = base_version
        self.errors: list[str] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sc_mllm_learner", daemon=True)

    def start(self) -> LearnerWorker:
        self._thread.start()
        return self

    def notify(self) -> None:
        """A sample was stored: look at the store now."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def step(self) -> AdapterRelease | None:
        """Learn what is pending (at least ``min_samples``); the release, or None if there was nothing."""
        pending = self.store.unlearned()
        if len(pending) < self.min_samples:
            return None
        t0 = time.perf_counter()
        samples = [t for s in pending for t in training_samples(s)]
        loss = float(self.learner.update(samples))
        version = self.base_version + int(self.learner.version)
        total = len(self.store)
        ids = [s.sample_id for s in pending]
        meta = {"version": version, "loss": loss, "num_samples": total, "sample_ids": ids}
        path = self.adapters.write(self.learner.model, version, meta)
        self.store.mark_learned(ids, version)
        release = AdapterRelease(
            version=version,
            path=str(path),
            num_samples=total,
            loss=loss,
            ema_decay=self.ema_decay,
            update_s=time.perf_counter() - t0,
        )
        self.on_release(release)
        return release

    def _run(self) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.step()
            except Exception as err:  # keep learning alive; the error is reported, the samples stay pending
                log.exception("online update failed")
                self.errors.append(repr(err))
                time.sleep(1.0)
