"""sc-mllm baselines: the fixed policies, the Wilson intervals, and (slow) the world's acceptance gates."""

import numpy as np
import pytest

from sc_mllm_ros.evaluation.baselines import (
    check_gates,
    Context,
    expert_alone,
    expert_summary,
    GATES,
    in_affordance_by_pull,
    markdown,
    POLICIES,
    run_baselines,
    run_episode,
    wilson,
)
from sc_mllm_ros.experts import Experts, PositionExpert, PositionNet, PositionNetConfig
from sc_mllm_ros.geometry import lift_pixel


def test_wilson_interval_brackets_the_rate():
    lo, hi = wilson(18, 20)
    assert lo < 0.9 < hi and 0.0 <= lo and hi <= 1.0
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == pytest.approx(1.0)
    narrow, wide = wilson(180, 200), wilson(18, 20)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_every_policy_runs_on_the_same_scene():
    means = {
        "*": {
            "contact": np.array([0.5, 0.5]),
            "up": np.array([0.0, 0.0, 1.0]),
            "forward": np.array([1.0, 0.0, 0.0]),
        }
    }
    out = run_episode(("test_seen", 0, 3, means, tuple(POLICIES)))
    assert set(out["policies"]) == set(POLICIES)
    assert 0.0 < out["part_fraction"] < 1.0 and isinstance(out["centre_on_part"], bool)
    assert out["policies"]["gt_pose"]["success"]  # seed 3's first scene is solvable
    for outcome in out["policies"].values():
        assert set(outcome) == {"success", "opened", "unreachable"}
    # The experts' hint is scored on the same scene; a refusal can neither land nor succeed.
    scored = out["experts"]
    assert isinstance(scored["in_affordance"], bool)
    if scored["refused"] is None:
        assert 0.0 <= scored["rotation_error_deg"] <= 180.0
    else:
        assert not scored["in_affordance"] and not out["policies"]["expert_alone"]["success"]


def test_expert_alone_acts_on_the_noisy_frame_only():
    from sc_mllm_ros.sim import PullWorld, sample_scene
    from sc_mllm_ros.sim.dataset import scene_seed

    with PullWorld(sample_scene(scene_seed(3, "test_seen", 0), "test_seen")) as world:
        obs = world.reset()
        experts = Experts(PositionExpert(PositionNet(PositionNetConfig())))  # untrained: any hint will do
        hints = experts.hints(obs.rgb, obs.depth, obs.intrinsics, f"pull the {world.object_name}")
        # No world in the context: the policy cannot read the ground truth.
        pose = expert_alone(Context(None, obs, {}, np.random.default_rng(0), hints))
        assert np.allclose(pose.up, hints.up) and np.allclose(pose.forward, hints.forward)
        assert np.allclose(pose.position, lift_pixel(obs.depth, hints.pixel, obs.intrinsics))
        with pytest.raises(ValueError, match="refused"):
            expert_alone(Context(None, obs, {}, np.random.default_rng(0)))
        # The affordance label at a pixel is the executed pull: on at the solved contact, off the part.
        gt = world.ground_truth
        assert in_affordance_by_pull(world, gt.contact)
        rows, cols = np.nonzero(~gt.part_mask)
        assert not in_affordance_by_pull(world, (rows[0], cols[0]))


def test_expert_summary_counts_a_refusal_as_a_miss():
    eps = [
        {"refused": None, "in_affordance": True, "rotation_error_deg": 5.0},
        {"refused": None, "in_affordance": False, "rotation_error_deg": 40.0},
        {"refused": "no depth", "in_affordance": False, "rotation_error_deg": None},
    ]
    summary = expert_summary(eps)
    assert summary["hint_in_affordance"] == pytest.approx(1 / 3) and summary["refused"] == 1
    assert summary["rotation_within_limit"] == pytest.approx(1 / 3)
    assert summary["rotation_error_deg_median"] == pytest.approx(22.5)
    lo, hi = summary["hint_in_affordance_ci"]
    assert lo < 1 / 3 < hi
    doc = {"episodes": 3, "seed": 0, "rates": {}, "world": {}, "gates": [], "experts": {"seen": summary}}
    assert "position hint in the affordance region 33.3 %" in markdown(doc)


def test_gates_report_their_misses():
    doc = {
        "rates": {
            "gt_pose": {"seen": 0.85, "unseen": 0.95, "external": None},
            "image_centre_depth_normal": {"seen": 0.1, "unseen": 0.3, "external": None},
            "noun_mean_pose": {"seen": 0.0, "unseen": 0.0, "external": None},
        }
    }
    gates = {(g["policy"], g["split"]): g for g in check_gates(doc)}
    assert not gates["gt_pose", "seen"]["passed"] and gates["gt_pose", "seen"]["miss"] == pytest.approx(0.05)
    assert gates["gt_pose", "unseen"]["passed"]
    assert not gates["image_centre_depth_normal", "unseen"]["passed"]
    assert ("gt_pose", "external") not in gates  # not measured, not passed either


@pytest.mark.slow
def test_the_world_meets_its_acceptance_gates():
    # The acceptance run: `sc-mllm baselines --episodes 200 --seed 11` (about 11 min on 2-3 cores).
    doc = run_baselines(episodes=200, seed=11, workers=2, mean_scenes=60)
    print(markdown(doc))
    failed = [g for g in doc["gates"] if not g["passed"]]
    assert len(doc["gates"]) == 3 * len(GATES) and not failed, failed


def test_baselines_command_refuses_an_unknown_policy(tmp_path):
    from sc_mllm_ros.cli import main

    with pytest.raises(ValueError, match="unknown policies"):
        main(["baselines", "--out", str(tmp_path), "--policies", "expert_alone", "oracle"])
    assert not (tmp_path / "baselines.json").exists()
