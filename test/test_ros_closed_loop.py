"""The whole loop over real rclpy/DDS, in simulation.

Task in, goal out, executed, graded, corrected through /request_correction by the automatic experts,
learned, adapter version bumped, the policy serving it.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: run tools/setup.sh")

from sc_mllm_ros.episode.learning import ADAPTER_FILE, newest_adapter  # noqa: E402
from sc_mllm_ros.nodes.correction import CorrectionNode  # noqa: E402
from sc_mllm_ros.nodes.learner import LearnerNode  # noqa: E402
from sc_mllm_ros.nodes.policy import PolicyNode  # noqa: E402
from sc_mllm_ros.nodes.system import compose  # noqa: E402

pytestmark = pytest.mark.ros
MAX_ROUNDS = 6


@pytest.fixture
def system(tmp_path):
    from sc_mllm_ros.assets import DEFAULT_MODEL
    from sc_mllm_ros.model import SCMLLM

    # The shipped model, with the default safety envelope: the system as `make demo` runs it.
    model = SCMLLM.from_pretrained(DEFAULT_MODEL)
    rclpy.init(domain_id=random.SystemRandom().randrange(1, 200))
    overrides = {
        "sc_mllm_sim": {"scene_seed": 1},
        "sc_mllm_learner": {"steps_per_update": 1},
    }
    system = compose(model, tmp_path / "data", overrides=overrides, model_version="test")
    yield system
    system.shutdown()
    rclpy.shutdown()


def test_task_to_learned_adapter_served_by_the_policy(system, tmp_path) -> None:
    client = system.client
    client.wait_for_frames(2, 60)
    obj = client.scene_object()
    task = f"pull the {obj}"

    # task in -> goal out -> executed -> graded
    pred, report, error = client.run_task(task, 120)
    assert error == "" and report is not None, error
    assert pred.adapter_version == 0 and pred.pose.header.frame_id == "camera_color_optical_frame"
    assert report.episode_id == pred.episode_id

    # corrected through /request_correction by the automatic experts until the checker accepts one
    samples = system.node(CorrectionNode).samples
    responses = []
    for _ in range(MAX_ROUNDS):
        res = client.request_correction(pred.episode_id, automatic=True, execute=True, timeout=120)
        responses.append(res)
        assert res.accepted and res.executed, res.message
        assert res.prediction.prompt_family == "correction" and res.report.episode_id == pred.episode_id
        # a sample is stored exactly when the checker graded the corrected attempt a success
        assert len(samples) == sum(r.report.success for r in responses)
        if res.report.success:
            break
    else:
        pytest.fail(f"no corrected attempt was graded a success in {MAX_ROUNDS} rounds")
    [sample] = samples.list_all()
    att = system.node(PolicyNode).episodes.get(pred.episode_id).attempts[-1]
    assert sample.episode_id == pred.episode_id and sample.contact == att.contact and att.success
    assert sample.hint_contact == att.hint_contact and att.hint_contact is not None  # the experts' hints

    # learned -> adapter version bumped, written atomically and announced
    version = client.wait_for_version(0, 180)
    assert version.version == 1 and version.num_samples == 1
    assert (tmp_path / "data" / "adapters" / "v00001" / ADAPTER_FILE).is_file()
    assert newest_adapter(tmp_path / "data" / "adapters")[0] == 1
    release = json.loads((tmp_path / "data" / "adapters" / "v00001" / "release.json").read_text())
    assert release["sample_ids"] == [sample.sample_id]
    assert not samples.unlearned()
    learner = system.node(LearnerNode)
    assert learner.releases[-1].version == 1 and not learner.worker.errors

    # the policy serves the new adapter without a restart
    client.wait_for(lambda: system.server.adapter_version == 1, 60, "the policy to swap the adapter")
    again, _, _ = client.run_task(task, 120)
    assert again.adapter_version == 1 and again.episode_id != pred.episode_id
    served = {k: v.clone() for k, v in system.server.model.adapter_state_dict().items()}
    learned = learner.worker.learner.model.adapter_state_dict()
    assert all(np.allclose(served[k].float().numpy(), learned[k].float().numpy()) for k in learned)
