"""The online learner without ROS: store, update, atomic adapter release, hot swap; serving keeps going."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from sc_mllm_ros.episode.adapters import AdapterStore
from sc_mllm_ros.episode.bench import serving_during_learning
from sc_mllm_ros.episode.learning import LearnerWorker, lower_thread_priority, training_samples
from sc_mllm_ros.episode.serving import ModelServer
from sc_mllm_ros.episode.store import SampleStore, StoredSample


@pytest.fixture(scope="module")
def model():
    import torch

    from sc_mllm_ros.model import SCMLLM, SCMLLMConfig

    torch.manual_seed(0)
    return SCMLLM(SCMLLMConfig())


def sample(hints: bool = True) -> StoredSample:
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    extra = (
        {"hint_contact": (30, 31), "hint_up": [0.0, 0.1, 1.0], "hint_forward": [1.0, 0.0, 0.0]}
        if hints
        else {}
    )
    return StoredSample("e1", "drawer", rgb, (32, 33), [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], **extra)


def test_a_correction_teaches_the_pose_prompt_and_the_correction_prompt() -> None:
    pose, corr = training_samples(sample())
    assert (pose.family, corr.family) == ("pose", "correction")
    assert (
        pose.contact == corr.contact == (32, 33)
        and corr.hint_contact == (30, 31)
        and pose.hint_contact is None
    )
    assert [s.family for s in training_samples(sample(hints=False))] == ["pose"]


def test_worker_releases_versions_atomically_and_servers_swap_them_in(model, tmp_path) -> None:
    from sc_mllm_ros.model import OnlineLearner

    store = SampleStore(tmp_path / "s.sqlite")
    released = []
    worker = LearnerWorker(
        OnlineLearner(model.clone(), steps_per_update=1),
        store,
        tmp_path / "adapters",
        released.append,
        ema_decay=0.5,
    )
    assert worker.step() is None  # nothing stored, nothing learned
    sid = store.add(sample())
    rel = worker.step()
    assert rel.version == 1 and released == [rel] and rel.num_samples == 1 and np.isfinite(rel.loss)
    adapters = AdapterStore(tmp_path / "adapters")
    assert adapters.newest() == (1, tmp_path / "adapters" / "v00001")
    assert adapters.release(rel.path)["sample_ids"] == [sid]
    assert not store.unlearned() and worker.step() is None
    assert not list((tmp_path / "adapters").glob(".*tmp*"))  # nothing half-written left behind

    server = ModelServer(model.clone())
    assert server.swap_adapter(rel.path, rel.version) and server.adapter_version == 1
    assert not server.swap_adapter(rel.path, 1)  # an announcement seen twice is not loaded twice
    learned = worker.learner.model.adapter_state_dict()
    served = server.model.adapter_state_dict()
    assert all(np.allclose(served[k].float().numpy(), learned[k].float().numpy()) for k in learned)

    # A restarted learner continues the numbering from the newest release.
    restarted = LearnerWorker(
        OnlineLearner(model.clone(), steps_per_update=1),
        store,
        tmp_path / "adapters",
        released.append,
        base_version=adapters.newest()[0],
    )
    store.add(sample(hints=False))
    assert restarted.step().version == 2 and adapters.newest() == (2, adapters.path(2))
    AdapterStore.load(server.model, adapters.path(2))  # what a restarted host loads


def test_background_worker_learns_what_is_stored(model, tmp_path) -> None:
    from sc_mllm_ros.model import OnlineLearner

    store = SampleStore(tmp_path / "s.sqlite")
    store.add(sample())  # stored before the learner started: learned on start
    released = []
    worker = LearnerWorker(
        OnlineLearner(model.clone(), steps_per_update=1), store, tmp_path / "a", released.append
    )
    worker.start()
    worker.notify()
    try:
        deadline = time.monotonic() + 60
        while not released and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert [r.version for r in released] == [1] and not worker.errors


def test_serving_keeps_answering_while_the_learner_trains(model) -> None:
    from sc_mllm_ros.model import OnlineLearner, TrainingSample

    rgb = np.random.default_rng(1).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    samples = [
        TrainingSample("pose", rgb, "drawer", (50, 60), np.array([0.0, 0.0, 1.0]), np.array([1.0, 0, 0]))
    ] * 2
    learner = OnlineLearner(model.clone(), steps_per_update=3)
    r = serving_during_learning(ModelServer(model), learner, samples, 2, rgb, "drawer")
    # The update takes several answer-times; answers keep completing while it runs (none waits for it).
    assert r["answers_during_update"] >= 1, r
    print(r)


def test_the_learning_thread_runs_nicer_than_serving_and_never_less_nice_than_it_started():
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: list[int] = []

    def learner(by: int) -> None:
        before = niceness()
        lower_thread_priority(by)
        seen.append(niceness() - before)

    serving_before = niceness()
    for by in (3, 100):
        thread = threading.Thread(target=learner, args=(by,))
        thread.start()
        thread.join()
    assert seen[0] == min(3, 19 - serving_before)
    assert niceness() + seen[1] == 19  # capped at the nicest level, never wrapped round
    assert niceness() == serving_before  # the calling (serving) thread keeps its priority
