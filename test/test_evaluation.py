"""`sc-mllm eval` (protocol v2): metrics against hand computations, the report, no leakage, a short run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from sc_mllm_ros.episode.loop import ArmOutcome, Gate
from sc_mllm_ros.episode.record import Attempt, BadInput, EpisodeRecord, Frame
from sc_mllm_ros.episode.serving import Grade, Hints
from sc_mllm_ros.evaluation import metrics
from sc_mllm_ros.evaluation.protocol import EvalConfig, gated_run, scene_plan, TRIVIAL
from sc_mllm_ros.evaluation.report import build_report, markdown
from sc_mllm_ros.geometry import CameraIntrinsics

# --- the metrics, each against a hand computation ----------------------------------------------------


def test_binary_scores_of_failure_match_a_hand_count() -> None:
    # 3 failures (2 flagged), 4 successes (1 flagged): tp 2, fn 1, fp 1, tn 3
    s = metrics.binary_scores([1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 0, 0, 0])
    assert (s["tp"], s["fn"], s["fp"], s["tn"]) == (2, 1, 1, 3)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)  # 2 tp / (2 tp + fp + fn) = 4 / 6
    assert s["specificity"] == pytest.approx(3 / 4)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    never = metrics.binary_scores([1, 0], [0, 0])  # a checker that never flags: precision undefined
    assert never["precision"] is None and never["recall"] == 0.0 and never["f1"] == 0.0


def test_auroc_counts_pairs_and_ties_half() -> None:
    # positives 0.9, 0.4 vs negatives 0.4, 0.1: pairs 1 + 1 + 0.5 + 1 of 4
    assert metrics.auroc([1, 1, 0, 0], [0.9, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)
    assert metrics.auroc([1, 1], [0.2, 0.3]) is None  # one class: undefined
    assert metrics.auroc([1, 0], [0.2, float("nan")]) is None  # no confidence: undefined


def test_cause_accuracy_and_macro_f1_on_labelled_failures_only() -> None:
    both = "position and rotation"
    true = ["position", "position", "rotation", both, "success"]
    pred = ["position", "success", "position", both, "success"]  # the success row is not a failure: left out
    s = metrics.cause_scores(true, pred)
    assert s["n"] == 4 and s["accuracy"] == pytest.approx(2 / 4)
    # position: tp 1, fp 1 (rotation), fn 1 (called success) -> 0.5; rotation 0; both 1.0
    assert s["f1"] == pytest.approx({"position": 0.5, "rotation": 0.0, both: 1.0})
    assert s["macro_f1"] == pytest.approx(0.5)


def test_confusion_has_an_unreachable_row_and_column() -> None:
    m = metrics.confusion(
        ["rotation", "unreachable", metrics.UNLABELLED], ["success", "unreachable", "position"]
    )
    rows, cols = m["rows"], m["columns"]
    assert "unreachable" in rows and "unreachable" in cols
    assert m["matrix"][rows.index("rotation")][cols.index("success")] == 1
    assert m["matrix"][rows.index("unreachable")][cols.index("unreachable")] == 1
    assert m["matrix"][rows.index(metrics.UNLABELLED)][cols.index("position")] == 1
    assert sum(map(sum, m["matrix"])) == 3


def test_wilson_interval_and_rate() -> None:
    r = metrics.rate(5, 10)
    assert r["rate"] == 0.5
    assert r["ci"] == pytest.approx([0.2366, 0.7634], abs=1e-4)  # the textbook value for 5 of 10
    assert metrics.rate(0, 0) == {"k": 0, "n": 0, "rate": None, "ci": [0.0, 1.0]}
    lo, hi = metrics.rate(0, 20)["ci"]
    assert lo == 0.0 and 0.1 < hi < 0.2


def test_outcome_is_the_ground_truth_where_the_loop_stopped() -> None:
    assert metrics.stopped_outcomes([False, False, True], 4) == [False, False, True, True, True]
    # a real success called a failure: the loop tried again, failed, and the checker approved that
    assert metrics.stopped_outcomes([True, False], 3) == [True, False, False, False]
    # the second answer had no goal: the episode ended failed
    assert metrics.stopped_outcomes([False], 2, cut=True) == [False, False, False]
    assert metrics.stopped_outcomes([], 1) == [False, False]


# --- the loop's gating and learning, with stand-ins (no world, no model) -------------------------------


def _attempt(family: str, contact=(1, 1)) -> Attempt:
    return Attempt(family, contact, [0, 0, 1.0], [1.0, 0, 0], [0, 0, 1.0], [0, 0, 0, 1.0], "", 0, 0.0)


class _Scripted:
    """Policy, arm, checker and experts at once, playing a script of (ground truth, checker verdict)."""

    def __init__(self, script: list[tuple[bool | None, bool | None] | str]) -> None:
        self.script, self.graded = script, []

    def predict(self, frame, object_name):
        return _attempt("pose")

    def correct(self, record, hints):
        if self.script[len(record.attempts)] == "no goal":
            raise BadInput("no depth at the answer's contact")
        return _attempt("correction", (len(record.attempts), 1))

    def hints(self, record):
        return Hints((2, 2), np.array([0, 0, 1.0]), np.array([1.0, 0, 0]), "stand-in")

    def execute(self, record, attempt):
        truth, _ = self.script[len(record.attempts) - 1]
        if truth is None:  # the arm could not reach it
            return ArmOutcome(False, "unreachable", success=False, true_cause="unreachable")
        return ArmOutcome(True, "", success=truth, true_cause="success" if truth else "position")

    def grade(self, record, attempt, outcome):
        self.graded.append(len(record.attempts) - 1)
        verdict = self.script[len(record.attempts) - 1][1]
        return Grade(verdict, "success" if verdict else "position", "", (0, 0), [0, 0, 1], [1, 0, 0], 0.5)


def _run(script, rounds: int = 5, gate: Gate = Gate.CHECKER):
    intr = CameraIntrinsics(fx=50.0, fy=50.0, cx=16.0, cy=16.0, width=32, height=32)
    frame = Frame(np.zeros((32, 32, 3), np.uint8), np.ones((32, 32), np.float32), intr)
    s = _Scripted(script)
    run = gated_run(
        EpisodeRecord("e", "pull the drawer", "drawer", frame), s, s, s, s, rounds, gate, learn=True
    )
    return run, s


def test_learning_takes_only_corrections_the_checker_called_successful() -> None:
    # first try fails (flagged); the correction fails but the checker calls it a success: learned, a failure
    run, _ = _run([(False, False), (False, True)])
    assert [a.family for _, a in run.learned] == ["correction"]
    assert run.learned_failures() == [True]
    assert metrics.stopped_outcomes(run.ground_truth(), 3) == [False] * 4
    # a real success the checker rejects is not learned; the next, approved one is
    run, _ = _run([(False, False), (True, False), (True, True)])
    assert len(run.learned) == 1 and run.learned[0][1] is run.steps[2].attempt
    assert run.learned_failures() == [False]
    assert metrics.stopped_outcomes(run.ground_truth(), 3) == [False, True, True, True]
    # a first try the checker approves is never learned (nothing was corrected)
    run, _ = _run([(True, True)])
    assert run.learned == []


def test_unreachable_is_the_executors_verdict_and_the_loop_corrects() -> None:
    run, scripted = _run([(None, None), (True, True)])
    assert scripted.graded == [1]  # the checker was never asked about the unreachable attempt
    assert run.steps[0].grade is None and len(run.steps) == 2


def test_an_answer_without_a_goal_ends_the_episode_failed_and_keeps_its_steps() -> None:
    run, _ = _run([(False, False), "no goal"])
    assert run.cut and len(run.steps) == 1
    assert metrics.stopped_outcomes(run.ground_truth(), 2, run.cut) == [False, False, False]


def test_oracle_gate_corrects_on_the_ground_truth_only() -> None:
    run, _ = _run([(False, True), (True, False)], gate=Gate.ORACLE)
    assert run.ground_truth() == [False, True]  # the checker's false 'success' did not stop it


def test_the_evaluation_corrects_with_the_rgbd_experts_on_the_recorded_frame_only() -> None:
    from sc_mllm_ros.episode.serving import FrameExperts
    from sc_mllm_ros.experts import ExpertError

    seen = []
    plane = SimpleNamespace(up=np.array([0, 0, 1.0]), forward=np.eye(3)[0])

    class Stub:  # what the experts get is all they may use: the frame and the task
        def hints(self, rgb, depth, intrinsics, task):
            seen.append((rgb, depth, intrinsics, task))
            if task == "pull the lid":
                raise ExpertError("the depth image has a hole there")
            return SimpleNamespace(
                pixel=(10.4, 20.6), plane=plane, candidate_pixels=((10.4, 20.6),), candidate_planes=(plane,)
            )

    intr = CameraIntrinsics(fx=50.0, fy=50.0, cx=16.0, cy=16.0, width=32, height=32)
    frame = Frame(np.zeros((32, 32, 3), np.uint8), np.ones((32, 32), np.float32), intr)
    last = _attempt("pose", (1, 2))
    record = EpisodeRecord("e", "pull the drawer", "drawer", frame)
    record.attempts.append(last)  # the failed try being corrected
    hints = FrameExperts(Stub()).hints(record)
    assert seen == [(frame.rgb, frame.depth, intr, "pull the drawer")]
    assert hints.contact == (10, 21) and hints.feedback.startswith("automatic experts")
    lid = EpisodeRecord("f", "pull the lid", "lid", frame)
    lid.attempts.append(last)
    refused = FrameExperts(Stub()).hints(lid)
    assert "refused" in refused.feedback and refused.contact == last.contact  # the model's own answer stays


# --- scenes: disjoint sets, disjoint roles ---------------------------------------------------------


def test_scene_sets_and_roles_are_disjoint() -> None:
    cfg = EvalConfig(episodes=30, cl_episodes=20, learning_rounds=2)
    test, val = scene_plan(cfg), scene_plan(EvalConfig(episodes=30, cl_episodes=20, split_role="validation"))
    a, b = set(test["cl_a"]["unseen"]), set(test["cl_b"]["unseen"])
    assert len(a) == len(b) == 20 and not a & b
    assert not a & set(test["main"]["unseen"]) and not b & set(test["main"]["unseen"])
    for split in ("seen", "unseen", "external"):
        assert not set(test["main"][split]) & set(val["main"][split])
    assert scene_plan(cfg) == test  # deterministic from the seed


def test_scene_plan_refuses_a_shared_scene(monkeypatch: pytest.MonkeyPatch) -> None:
    from sc_mllm_ros.evaluation import protocol

    monkeypatch.setattr(protocol, "scene_seeds", lambda seed, role, split, purpose, n: list(range(n)))
    with pytest.raises(ValueError, match="pick another --seed"):
        scene_plan(EvalConfig(episodes=3, cl_episodes=3))


# --- the report from hand-made results -------------------------------------------------------------


def _scene(split: str, first: bool, gated: list[bool], oracle: list[bool], attempts: list[dict], cat="chest"):
    outcome = {p: {"success": False} for p in ("gt_pose", "expert_alone", *TRIVIAL)}
    outcome["gt_pose"] = {"success": True}
    outcome["image_centre_depth_normal"] = {"success": first}
    return {
        "split": split,
        "category": cat,
        "first_try": first,
        "checker_gated": gated,
        "oracle_gated": oracle,
        "baselines": outcome,
        "attempts": attempts,
        "pose_error": {"contact_px": 10.0, "up_deg": 5.0, "forward_deg": 7.0},
        "gt": {"contact_frac": [0.4, 0.5], "up": [0, 0, 1.0], "forward": [1.0, 0, 0]},
        "latency_s": [0.1],
    }


def _att(truth: str, success: bool, cause: str, conf: float | None, grey: str = "success") -> dict:
    row = {"truth": truth, "success": success, "cause": cause, "confidence": conf}
    if truth != "unreachable":
        row["grey_end"] = {"cause": grey, "confidence": 0.9}
        row["initial_as_end"] = {"cause": cause, "confidence": conf}
    return row


@pytest.fixture
def hand_results() -> dict:
    ok, pos = _att("success", True, "success", 0.9), _att("position", False, "position", 0.2)
    missed = _att("rotation", False, "success", 0.6)
    seen = [
        _scene("seen", True, [True, True], [True, True], [ok]),
        _scene("seen", False, [True, True], [True, True], [pos, ok]),
        _scene("seen", False, [False, False], [False, True], [missed], cat="oven"),
    ]
    unseen = [
        _scene(
            "unseen", False, [False, False], [False, False], [_att("unreachable", False, "unreachable", None)]
        )
    ]
    cl = {
        "split": "unseen",
        "scenes": {"set_a": 2, "set_b": 2, "retention_seen": 2},
        "set_a": [[False, False], [True, False]],
        "set_b": [[False, False], [False, True]],
        "retention_seen": [[True, True], [True, False]],
        "learned_failures": {"learned": 3, "failures": 1},
        "log": [{"round": 1, "corrections_learned": 3, "of_which_failures": 1, "samples": 6, "loss": 1.0}],
    }
    return {
        "scenes": {"seen": seen, "unseen": unseen},
        "continual_learning": cl,
        "model": {"checker_threshold": 0.5, "checker_views": "end"},
        "timings": {"seen": {"tasks": 3, "wall_s": 2.0, "cpu_s": 3.0}},
    }


def test_report_has_the_issue_keys_with_hand_computed_values(hand_results: dict) -> None:
    r = build_report(hand_results, {"model": "m", "seed": 3, "split_role": "test", "experts": "rgbd"})
    s = r["success"]
    assert s["first_try"] == {"seen": pytest.approx(1 / 3), "unseen": 0.0}
    assert s["no_correction"] == s["first_try"]  # the old key keeps its meaning
    assert s["checker_gated"]["seen"] == pytest.approx([2 / 3, 2 / 3])
    assert s["oracle_gated"]["seen"] == pytest.approx([2 / 3, 1.0])
    assert s["gt_pose"]["seen"] == 1.0 and s["expert_alone"]["seen"] == 0.0
    assert s["best_trivial"]["seen"] == pytest.approx(1 / 3)
    assert r["episodes"] == {"seen": 3, "unseen": 1}
    pa = r["checker"]["policy_attempts"]
    # graded: ok, pos, ok, missed (the unreachable attempt is not graded): 2 failures, 1 flagged
    assert (pa["n"], pa["unreachable"], pa["failures"]) == (4, 1, 2)
    assert pa["recall"] == 0.5 and pa["precision"] == 1.0 and pa["f1"] == pytest.approx(2 / 3)
    assert pa["auroc"] == pytest.approx(1.0)  # failure scores 0.8, 0.4 above successes' 0.1, 0.1
    assert pa["cause_accuracy"] == 0.5
    m = pa["confusion"]
    assert m["matrix"][m["rows"].index("unreachable")][m["columns"].index("unreachable")] == 1
    grey = r["checker"]["ablations"]["grey_end"]
    assert grey["recall"] == 0.0 and grey["unchanged_on_failures"] == 0.5  # the missed one stays 'success'
    cl = r["continual_learning"]
    assert cl["set_b"] == [0.0, 0.5] and cl["retention_seen"] == [1.0, 0.5]
    assert cl["learned_failures"] == pytest.approx(1 / 3)
    assert cl["learned_corrections"] == {"learned": 3, "in_fact_failures": 1}
    assert r["per_category"]["seen"]["oven"]["n"] == 1


def test_every_rate_has_its_interval_at_the_same_path(hand_results: dict) -> None:
    r = build_report(hand_results, {"model": "m", "seed": 3, "split_role": "test", "experts": "rgbd"})
    pairs = []

    def walk(value, interval) -> None:
        if isinstance(interval, dict):
            for k, v in interval.items():
                walk(value[k], v)
        elif isinstance(interval, list) and interval and isinstance(interval[0], list):
            for v, i in zip(value, interval, strict=True):
                walk(v, i)
        else:
            assert isinstance(interval, list) and len(interval) == 2, interval
            pairs.append((value, interval))

    for key in ("success", "continual_learning", "checker", "per_category"):
        walk(r[key], r["intervals"][key])
    assert len(pairs) > 50
    for value, (lo, hi) in pairs:
        assert value is None or lo - 1e-9 <= value <= hi + 1e-9
    for path in (("success", "first_try", "seen"), ("checker", "policy_attempts", "recall")):
        node = r["intervals"]
        for p in path:
            node = node[p]
        assert len(node) == 2
    json.dumps(r)  # the document is JSON as it stands


def test_report_states_each_miss_from_the_numbers(hand_results: dict) -> None:
    r = build_report(hand_results, {"model": "m", "seed": 3, "split_role": "validation", "experts": "rgbd"})
    first = next(t for t in r["targets"] if t["target"] == "first try, seen")
    assert first["miss_points"] == pytest.approx(70 - 100 / 3, abs=0.1)
    recall = next(t for t in r["targets"] if t["target"] == "checker recall of failure")
    assert "1 of 2 failures flagged" in recall["why"]
    text = markdown(r)
    assert "missed by 36.7 points" in text  # first try seen: 33.3 % against 70 %
    assert "| checker-gated, after 2 | 66.7 [21, 94] | 0.0 [0, 79] | 84.8 | 57.7 |" in text
    # a validation run proposes the threshold with the best balanced accuracy on its own scenes (the rule of
    # sc-mllm calibrate): between the confidences 0.6 (a failure) and 0.9 (the successes)
    assert r["choices"]["checker_threshold"] == pytest.approx(0.75)


# --- a short checker-gated evaluation of the shipped model (CI) --------------------------------------

SHORT = 6  # scenes per split


@pytest.fixture(scope="module")
def short_eval(tmp_path_factory) -> dict:
    from sc_mllm_ros.assets import DEFAULT_MODEL
    from sc_mllm_ros.cli import main

    out = tmp_path_factory.mktemp("eval")
    args = ["eval", "--model", str(DEFAULT_MODEL), "--out", str(out), "--seed", "11", "--no-progress"]
    args += ["--episodes", str(SHORT), "--learning-rounds", "1", "--cl-episodes", "3", "--mean-scenes", "6"]
    assert main(args) == 0
    for name in ("report.md", "success_vs_corrections.png", "confusion.png", "continual_learning.png"):
        assert (out / name).is_file()
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    return {"report": json.loads((out / "report.json").read_text()), "rows": rows}


def test_short_eval_writes_the_issue_keys(short_eval: dict) -> None:
    r = short_eval["report"]
    assert r["episodes"] == {"seen": SHORT, "unseen": SHORT, "external": SHORT}
    for key in ("first_try", "checker_gated", "oracle_gated", "expert_alone", "gt_pose"):
        assert set(r["success"][key]) == {"seen", "unseen", "external"}
    assert all(len(v) == 5 for v in r["success"]["checker_gated"].values())  # rounds 1..5
    cl = r["continual_learning"]
    assert all(len(cl[k]) == 2 for k in ("set_a", "set_b", "retention_seen"))  # rounds 0..1
    for key in ("n", "precision", "recall", "f1", "auroc", "cause_accuracy", "confusion"):
        assert key in r["checker"]["policy_attempts"]
    assert set(r["checker"]["ablations"]) == {"grey_end", "initial_as_end"}
    assert r["meta"]["experts"] == "rgbd" and r["meta"]["split_role"] == "test"
    assert len(short_eval["rows"]) == 3 * SHORT  # one row per scene in episodes.jsonl


def _pooled(report: dict, rates: dict[str, float]) -> float:
    """A rate over all splits, weighted by their scenes."""
    n = report["episodes"]
    return sum(rates[s] * n[s] for s in n) / sum(n.values())


def test_short_checker_gated_eval_beats_the_best_trivial_baseline(short_eval: dict) -> None:
    r = short_eval["report"]
    ours = _pooled(r, {s: v[-1] for s, v in r["success"]["checker_gated"].items()})
    trivial = {p: _pooled(r, r["success"]["trivial"][p]) for p in TRIVIAL}
    best = max(trivial, key=trivial.get)
    assert ours > trivial[best], f"checker-gated loop {ours:.2f} vs best trivial {best} {trivial[best]:.2f}"


def test_eval_refuses_the_seeds_of_the_models_training_and_calibration_data(tmp_path) -> None:
    from sc_mllm_ros.cli import main
    from sc_mllm_ros.commands.eval import model_data_seeds

    (tmp_path / "training.json").write_text(json.dumps({"data_seed": 1000, "data_seeds": [1000, 2000]}))
    (tmp_path / "calibration.json").write_text(json.dumps({"data_seed": 3000}))
    assert model_data_seeds(tmp_path) == {1000, 2000, 3000}
    with pytest.raises(SystemExit, match="calibration data came from"):
        main(["eval", "--model", str(tmp_path), "--out", str(tmp_path / "out"), "--seed", "2000"])
