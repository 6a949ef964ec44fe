"""The whole loop over real rclpy/DDS, in simulation: the graph of the launch file, composed in one process.

The model host loads the model once; the ``/sc_mllm/run_episode`` action runs an episode through a failure,
corrections with the automatic experts, a learned adapter, and the same task again with that adapter.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: run tools/setup.sh")

from sc_mllm_ros.client import EpisodeStatus  # noqa: E402
from sc_mllm_ros.episode.adapters import AdapterStore  # noqa: E402
from sc_mllm_ros.model.prompts import FAILURE_ANSWERS  # noqa: E402
from sc_mllm_ros.nodes.learner import LearnerNode  # noqa: E402
from sc_mllm_ros.nodes.system import compose  # noqa: E402

pytestmark = pytest.mark.ros
MAX_CORRECTIONS = 6
SERVING_NODES = {"sc_mllm_model_host", "sc_mllm_policy", "sc_mllm_checker", "sc_mllm_correction"}


@pytest.fixture
def first_tries_graded_failures(monkeypatch):
    """The checker grades each episode's first try a failure, every correction as the model does.

    These tests are about the graph's plumbing (verdict -> correction -> sample -> adapter), not about how
    well the model sees failure (the evaluation measures that). The real verdict on a first try depends on
    which camera frame the host grades: the simulated camera's noise advances with every published frame,
    so with ROS timing. The stand-in makes the first verdict a failure every run; later verdicts are real.
    """
    from sc_mllm_ros.episode.serving import ModelServer

    predict, grade = ModelServer.predict, ModelServer.grade
    first = {"pending": False}  # one episode at a time: the host's episode worker is single

    def predicting(self, *args, **kwargs):
        first["pending"] = True
        return predict(self, *args, **kwargs)

    def grading(self, *args, **kwargs):
        real = grade(self, *args, **kwargs)
        if not first["pending"]:
            return real
        first["pending"] = False
        return dataclasses.replace(real, success=False, cause="position", text=FAILURE_ANSWERS["position"])

    monkeypatch.setattr(ModelServer, "predict", predicting)
    monkeypatch.setattr(ModelServer, "grade", grading)


@pytest.fixture
def system(tmp_path, monkeypatch, first_tries_graded_failures):
    from sc_mllm_ros.model import SCMLLM

    loads = []
    from_pretrained = SCMLLM.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args)
        return from_pretrained(cls, *args, **kwargs)

    monkeypatch.setattr(SCMLLM, "from_pretrained", classmethod(counting))
    rclpy.init(domain_id=random.SystemRandom().randrange(1, 200))
    overrides = {
        "sc_mllm_sim": {"scene_seed": 18, "scene_split": "test_unseen"},
        "sc_mllm_learner": {"steps_per_update": 1},
    }
    # No model given: the host loads its model_path (empty: the shipped model), as the executable does.
    system = compose(None, tmp_path / "data", overrides=overrides)
    system.loads = loads
    yield system
    system.shutdown()
    rclpy.shutdown()


def test_the_model_is_loaded_once_and_served_by_the_design_card_nodes(system) -> None:
    assert len(system.loads) == 1  # the model host's; the learner trains a copy of its adapter
    host = system.host
    assert {n.get_name() for n in host.nodes} == SERVING_NODES
    assert all(n.host is host for n in (host.policy, host.checker, host.correction))
    learner = system.node(LearnerNode)
    assert learner.worker.learner.model is not host.server.model
    graph = system.client.wait_for(
        lambda: (names := set(system.client.get_node_names())) >= SERVING_NODES and names, 30, "the graph"
    )
    assert {"sc_mllm_sim", "sc_mllm_learner"} <= graph


def test_run_episode_action_corrects_a_failure_learns_it_and_serves_the_adapter(system, tmp_path) -> None:
    client = system.client
    client.wait_for_frames(2, 60)
    task = f"pull the {client.scene_object()}"

    res = client.run_episode(task, MAX_CORRECTIONS, timeout=900)
    assert res.status is EpisodeStatus.SUCCEEDED and res.success, res
    verdicts = [f.verdict for f in res.feedback]
    assert verdicts[0] != "success" and verdicts[-1] == "success", verdicts
    assert set(verdicts[:-1]) <= {"failure", "unreachable"}  # only a failure triggers a correction
    assert [f.correction for f in res.feedback] == [False] + [True] * (res.attempts - 1)
    assert res.attempts == len(res.causes) == len(verdicts) >= 2 and res.causes[-1] == "success"
    for i, cause in enumerate(res.causes):  # every graded attempt has its verdict on the failure report
        if cause != "unreachable":
            report = client.wait_for_report(res.episode_id, i, 30)
            assert report.success == (cause == "success")

    # the successful correction is stored, learned, written atomically and announced
    [sample] = system.host.samples.list_all()
    record = system.host.episodes.get(res.episode_id)
    assert sample.episode_id == res.episode_id and sample.contact == record.attempts[-1].contact
    assert record.attempts[-1].hint_contact is not None  # the experts' hints went into the prompt
    version = client.wait_for_version(0, 300)
    assert version.version == 1 and version.num_samples == 1
    adapters = AdapterStore(tmp_path / "data" / "adapters")
    assert adapters.newest() == (1, adapters.path(1)) and version.path == str(adapters.path(1))
    assert adapters.release(version.path)["sample_ids"] == [sample.sample_id]
    learner = system.node(LearnerNode)
    assert learner.releases[-1].version == 1 and not learner.worker.errors

    # the host serves the new adapter without a restart
    client.wait_for(lambda: system.server.adapter_version == 1, 60, "the host to swap the adapter")
    again = client.run_episode(task, 0, timeout=300)
    assert again.attempts == 1 and again.feedback[0].adapter_version == 1
    served = {k: v.clone() for k, v in system.server.model.adapter_state_dict().items()}
    learned = learner.worker.learner.model.adapter_state_dict()
    assert all(np.allclose(served[k].float().numpy(), learned[k].float().numpy()) for k in learned)


def test_request_correction_answers_once_the_goal_is_accepted_and_the_verdict_follows(system) -> None:
    client = system.client
    client.wait_for_frames(2, 60)
    first = client.run_episode(f"pull the {client.scene_object()}", 0, timeout=300)
    assert first.status is EpisodeStatus.FAILED and first.attempts == 1, first

    res = client.request_correction(first.episode_id, automatic=True, execute=True, timeout=120)
    assert res.accepted and res.executed and res.attempt == 1, res.message
    assert res.prediction.prompt_family == "correction" and res.prediction.episode_id == first.episode_id
    report = client.wait_for_report(first.episode_id, 1, 120)
    graded = client.wait_for(
        lambda: (a := system.host.episodes.get(first.episode_id).attempts[1]).cause and a, 30, "the record"
    )
    assert graded.executed and graded.success == report.success
    # a correction the checker accepts is learned, one it refuses is not
    client.wait_for(lambda: len(system.host.samples) == int(report.success) or None, 30, "the sample store")


def test_a_canceled_episode_stops_before_its_next_correction(system) -> None:
    client = system.client
    client.wait_for_frames(2, 60)
    assert client.start_episode(f"pull the {client.scene_object()}", MAX_CORRECTIONS)
    client.cancel_episode()  # while the policy answers: the attempt runs, its correction does not
    res = client.episode_result(300)
    assert res.status is EpisodeStatus.CANCELED and not res.success, res
    assert res.attempts == 1 and "canceled" in res.message
    assert [f.verdict for f in res.feedback] == ["failure"]  # graded a failure on this scene
