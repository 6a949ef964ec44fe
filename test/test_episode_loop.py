"""The one episode loop, over fakes of its Protocols: the gate, corrections, unreachable goals, learning."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sc_mllm_ros.episode.loop import ArmOutcome, Gate, run_episode, Verdict
from sc_mllm_ros.episode.record import Attempt, EpisodeRecord, Frame
from sc_mllm_ros.episode.serving import Grade, Hints
from sc_mllm_ros.geometry import CameraIntrinsics, Pose

INTR = CameraIntrinsics.from_fov(45.0, 32, 24)
FRAME = Frame(np.zeros((24, 32, 3), np.uint8), np.full((24, 32), 0.8, np.float32), INTR)
ANSWER = Attempt("pose", (5, 6), [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0, 0, 0.8], [0, 0, 0, 1], "a", 0, 0.01)


class FakePolicy:
    def __init__(self) -> None:
        self.hints: list[Hints] = []

    def predict(self, frame: Frame, object_name: str) -> Attempt:
        return replace(ANSWER)

    def correct(self, record: EpisodeRecord, hints: Hints) -> Attempt:
        self.hints.append(hints)
        return replace(ANSWER, family="correction", text=f"correction {len(self.hints)}")


class ScriptedArm:
    """Completes or not, with a ground truth, per attempt in order."""

    def __init__(self, script: list[tuple[bool, bool | None]]) -> None:
        self.script = list(script)
        self.executed: list[str] = []

    def execute(self, record: EpisodeRecord, attempt: Attempt) -> ArmOutcome:
        completed, truth = self.script.pop(0)
        self.executed.append(attempt.text)
        return ArmOutcome(
            completed,
            "ok" if completed else "unreachable",
            Pose(np.zeros(3), np.eye(3)),
            FRAME.rgb,
            INTR,
            truth,
        )


class ScriptedChecker:
    def __init__(self, verdicts: list[bool]) -> None:
        self.verdicts = list(verdicts)
        self.asked = 0

    def grade(self, record: EpisodeRecord, attempt: Attempt, outcome: ArmOutcome) -> Grade:
        self.asked += 1
        ok = self.verdicts.pop(0)
        cause = "success" if ok else "position"
        return Grade(ok, cause, cause, (1, 2), [0.0, 0.0, 1.0], [1.0, 0.0, 0.0])


class FixedExperts:
    def hints(self, record: EpisodeRecord) -> Hints:
        return Hints((3, 4), np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]), "expert")


def run(arm, checker, max_corrections=3, gate=Gate.CHECKER, learned=None, steps=None):
    record = EpisodeRecord("ep", "pull the drawer", "drawer", FRAME)
    policy = FakePolicy()

    def learn(rec, att):
        learned.append(att.text)

    out = run_episode(
        record,
        policy,
        arm,
        checker,
        FixedExperts(),
        max_corrections,
        learn if learned is not None else None,
        gate,
        on_step=steps.append if steps is not None else None,
    )
    return out, record, policy


def test_only_a_failure_verdict_triggers_a_correction_and_a_successful_one_is_learned() -> None:
    arm = ScriptedArm([(True, False), (True, False), (True, True)])
    checker = ScriptedChecker([False, False, True])
    learned, steps = [], []
    out, record, policy = run(arm, checker, learned=learned, steps=steps)
    assert out.verdicts == [Verdict.FAILURE, Verdict.FAILURE, Verdict.SUCCESS]
    assert out.causes == ["position", "position", "success"] and out.attempts == 3 == len(record.attempts)
    assert learned == ["correction 2"] and [s.index for s in steps] == [0, 1, 2]
    assert out.success and out.success_by_round(4) == [False, False, True, True, True]
    assert len(policy.hints) == 2 and record.attempts[1].cause == "position" and record.attempts[1].executed


def test_the_checker_gate_stops_on_a_false_success_and_the_ground_truth_reports_it() -> None:
    out, _, policy = run(ScriptedArm([(True, False)]), ScriptedChecker([True]), learned=[])
    assert out.verdicts == [Verdict.SUCCESS] and not policy.hints
    assert out.success is False and out.success_by_round(2) == [False, False, False]


def test_the_oracle_gate_corrects_what_the_ground_truth_calls_a_failure() -> None:
    arm = ScriptedArm([(True, False), (True, True)])
    out, record, _ = run(arm, ScriptedChecker([True, False]), gate=Gate.ORACLE)
    assert out.verdicts == [Verdict.FAILURE, Verdict.SUCCESS]
    assert [a.success for a in record.attempts] == [True, False]  # the attempts keep the checker's verdicts


def test_an_unreachable_goal_is_corrected_without_asking_the_checker() -> None:
    checker = ScriptedChecker([True])
    out, record, _ = run(ScriptedArm([(False, None), (True, None)]), checker)
    assert checker.asked == 1 and out.verdicts == [Verdict.UNREACHABLE, Verdict.SUCCESS]
    assert out.causes == ["unreachable", "success"] and out.success  # no ground truth: the verdict
    assert not record.attempts[0].executed and record.attempts[0].report_text == "unreachable"


def test_corrections_stop_at_the_limit() -> None:
    arm = ScriptedArm([(True, False)] * 3)
    out, _, policy = run(arm, ScriptedChecker([False] * 3), max_corrections=2, learned=[])
    assert out.attempts == 3 and len(policy.hints) == 2 and not out.success
    with pytest.raises(ValueError):
        run(arm, ScriptedChecker([]), max_corrections=-1)


def test_a_stop_request_ends_the_episode_before_the_next_correction() -> None:
    record = EpisodeRecord("ep", "pull the drawer", "drawer", FRAME)
    policy = FakePolicy()
    asked = []

    def stop() -> bool:
        asked.append(len(record.attempts))
        return True

    out = run_episode(
        record, policy, ScriptedArm([(True, False)]), ScriptedChecker([False]), FixedExperts(), 3, stop=stop
    )
    assert out.stopped and out.attempts == 1 and asked == [1] and not policy.hints
    assert out.verdicts == [Verdict.FAILURE]


def _plane(up: list[float]):
    from sc_mllm_ros.experts import PlaneFit

    u = np.array(up, float)
    return PlaneFit(-u, np.zeros(3), u, np.array([1.0, 0.0, 0.0]), 1.0, 1.0, 1.0, 0.0, 10)


def test_expert_hints_move_to_the_next_untried_candidate_with_its_own_plane() -> None:
    from types import SimpleNamespace

    from sc_mllm_ros.episode.serving import expert_hints

    planes = (_plane([0.0, 0.0, 1.0]), None, _plane([0.0, 0.6, 0.8]))
    auto = SimpleNamespace(
        pixel=(5.0, 6.0),
        plane=planes[0],
        candidate_pixels=((5.0, 6.0), (12.0, 20.0), (18.0, 4.0)),
        candidate_planes=planes,
    )
    record = EpisodeRecord("ep", "pull the drawer", "drawer", FRAME)
    record.attempts.append(replace(ANSWER, contact=(20, 30)))  # far from every candidate
    first = expert_hints(record, auto)
    assert first.contact == (5, 6) and first.feedback == "automatic experts"
    record.attempts.append(replace(ANSWER, contact=first.contact))  # tried, and it failed
    second = expert_hints(record, auto)
    # The second candidate has no plane: the third is next, with the plane fitted there.
    assert second.contact == (18, 4) and np.allclose(second.up, [0.0, 0.6, 0.8])
    record.attempts.append(replace(ANSWER, contact=second.contact))
    assert expert_hints(record, auto).contact == (5, 6)  # all tried: the best again
    only_rotation = expert_hints(record, auto, position=False)
    assert only_rotation.contact == record.last.contact and np.allclose(only_rotation.up, [0.0, 0.0, 1.0])


def test_a_correction_that_landed_away_from_its_hint_still_uses_that_hint_up() -> None:
    from types import SimpleNamespace

    from sc_mllm_ros.episode.serving import expert_hints

    planes = (_plane([0.0, 0.0, 1.0]), _plane([0.0, 0.6, 0.8]))
    auto = SimpleNamespace(
        pixel=(5.0, 6.0), plane=planes[0], candidate_pixels=((5.0, 6.0), (18.0, 4.0)), candidate_planes=planes
    )
    record = EpisodeRecord("ep", "pull the drawer", "drawer", FRAME)
    record.attempts.append(replace(ANSWER, contact=(20, 30)))
    first = expert_hints(record, auto)
    assert first.contact == (5, 6)
    # The correction answered far from its hint and failed: the hint was tried all the same.
    record.attempts.append(replace(ANSWER, family="correction", contact=(30, 30), hint_contact=first.contact))
    assert expert_hints(record, auto).contact == (18, 4)
