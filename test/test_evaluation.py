"""`sc-mllm eval`: the report's arithmetic, and a short evaluation of the shipped model (run in CI)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sc_mllm_ros.evaluation.protocol import EpisodeResult, summarize
from sc_mllm_ros.evaluation.report import build_report, confusion, markdown


def _episode(
    split: str, successes: list[bool], detections, random_success=False, contact=(0.5, 0.5)
) -> EpisodeResult:
    return EpisodeResult(
        split=split,
        category="drawer",
        scene_seed=1,
        success_by_round=successes,
        contact_error_px=10.0,
        up_error_deg=5.0,
        forward_error_deg=7.0,
        gt_contact_frac=contact,
        gt_up=[0, 0, 1.0],
        gt_forward=[1.0, 0, 0],
        detections=detections,
        latency_s=[0.1],
        random_success=random_success,
    )


def test_confusion_matrix_and_majority_baseline() -> None:
    detections = {
        ("success", "success"): 3,
        ("position", "position"): 2,
        ("position", "rotation"): 1,
        ("rotation", "success"): 2,
    }
    result = confusion(detections)
    assert result["graded"] == 8
    assert result["accuracy"] == pytest.approx(5 / 8)
    assert result["majority_class_accuracy"] == pytest.approx(3 / 8)
    labels = result["labels"]
    assert result["confusion"][labels.index("position")][labels.index("rotation")] == 1


def test_summary_success_rates_and_mean_baseline() -> None:
    results = [
        _episode(
            "seen", [False, True, True], [("position", "position"), ("success", "success")], True, (0.2, 0.4)
        ),
        _episode("seen", [False, False, False], [("rotation", "position")], False, (0.6, 0.4)),
    ]
    s = summarize(results)
    assert s["success_no_correction"] == 0.0
    assert s["success_after_corrections"] == [0.5, 0.5]
    assert s["random_policy"] == 0.5
    # The mean contact is (0.4, 0.4): each ground truth is 0.2 of the 336 frame away from it.
    assert s["mean_baseline"]["contact_px_mean"] == pytest.approx(0.2 * 336)
    report = build_report({"seen": s}, {}, {"seed": 3})
    assert report["failure_detection"]["accuracy"] == pytest.approx(2 / 3)
    text = markdown(report)
    assert "| after 2 corrections | 50.0 |" in text
    assert "missed by 60.0 points" in text  # no-correction target of 60 % against 0 %


@pytest.fixture(scope="module")
def short_eval(tmp_path_factory) -> dict:
    """A short checker-gated evaluation of the shipped model (6 episodes a split, seed 11)."""
    from sc_mllm_ros.assets import DEFAULT_MODEL
    from sc_mllm_ros.cli import main

    out = tmp_path_factory.mktemp("eval")
    rc = main(
        [
            "eval",
            "--model",
            str(DEFAULT_MODEL),
            "--episodes",
            "6",
            "--out",
            str(out),
            "--seed",
            "11",
            "--correction-rounds",
            "2",
            "--learning-rounds",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0
    for name in ("report.md", "success_vs_corrections.png", "confusion.png", "continual_learning.png"):
        assert (out / name).is_file()
    return json.loads((out / "report.json").read_text())


def test_short_eval_of_the_shipped_model_writes_the_report(short_eval: dict) -> None:
    assert short_eval["episodes"] == {"seen": 6, "unseen": 6}
    assert short_eval["meta"]["experts"] == "rgbd" and short_eval["meta"]["gate"] == "checker"  # as deployed
    assert len(short_eval["success"]["continual_learning"]["seen"]) == 1
    for split in ("seen", "unseen"):
        assert len(short_eval["success"]["after_corrections"][split]) == 2  # after 1 and 2 corrections


@pytest.mark.xfail(
    strict=True,
    reason="the shipped model was trained on the first world; on benchmark v2 its checker calls nearly every "
    "attempt a success, so the checker-gated loop never corrects and scores like the random policy (0 on "
    "these scenes). Retraining it on benchmark v2 is the checker issue's work; this must then pass.",
)
def test_short_eval_of_the_shipped_model_beats_the_random_policy(short_eval: dict) -> None:
    ours = np.mean([short_eval["success"]["after_corrections"][k][-1] for k in ("seen", "unseen")])
    random = np.mean([short_eval["random_policy"][k] for k in ("seen", "unseen")])
    assert ours >= random + 0.3, f"success after corrections {ours:.2f} vs random policy {random:.2f}"


def test_the_evaluation_corrects_with_the_rgbd_experts_on_the_recorded_frame_only() -> None:
    from types import SimpleNamespace

    from sc_mllm_ros.episode.record import EpisodeRecord, Frame
    from sc_mllm_ros.evaluation.protocol import RecordedFrameExperts
    from sc_mllm_ros.experts import ExpertError
    from sc_mllm_ros.geometry import CameraIntrinsics

    seen = []

    class Stub:  # what the experts get is all they may use: the frame and the task
        def hints(self, rgb, depth, intrinsics, task):
            seen.append((rgb, depth, intrinsics, task))
            if task == "pull the lid":
                raise ExpertError("the depth image has a hole there")
            return SimpleNamespace(pixel=(10.4, 20.6), up=np.array([0, 0, 1.0]), forward=np.eye(3)[0])

    intr = CameraIntrinsics(fx=50.0, fy=50.0, cx=16.0, cy=16.0, width=32, height=32)
    frame = Frame(np.zeros((32, 32, 3), np.uint8), np.ones((32, 32), np.float32), intr)
    last = SimpleNamespace(contact=(1, 2), up=np.array([0, 1.0, 0]), forward=np.array([0, 0, 1.0]))
    record = EpisodeRecord("e", "pull the drawer", "drawer", frame)
    record.attempts.append(last)  # the failed try being corrected
    hints = RecordedFrameExperts(Stub()).hints(record)
    assert seen == [(frame.rgb, frame.depth, intr, "pull the drawer")]
    assert hints.contact == (10, 21) and hints.feedback == "automatic experts"
    lid = EpisodeRecord("f", "pull the lid", "lid", frame)
    lid.attempts.append(last)
    refused = RecordedFrameExperts(Stub()).hints(lid)
    assert "refused" in refused.feedback and refused.contact == last.contact  # the model's own answer stays
