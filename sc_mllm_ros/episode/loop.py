"""One episode of the self-correcting loop: predict, execute, grade, correct on failure, learn from success.

The one implementation of the loop, over small Protocols, so that ``sc-mllm eval`` (the embedded world, the
simulation's experts), ``sc-mllm bringup --demo`` and the ROS action ``run_episode`` (an arm behind the
``execute_pose`` action) run the same function. It knows nothing of ROS or of the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import enum
from typing import Protocol

import numpy as np

from sc_mllm_ros.episode.record import Attempt, EpisodeRecord, Frame
from sc_mllm_ros.episode.serving import Grade, Hints
from sc_mllm_ros.geometry import CameraIntrinsics, Pose


class Verdict(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"  # executed, and graded a failure
    UNREACHABLE = "unreachable"  # not executed to completion (refused, unreachable, stopped): a failure


class Gate(enum.Enum):
    """What decides whether an attempt is corrected."""

    CHECKER = "checker"  # the model's own verdict, as deployed
    ORACLE = "oracle"  # the ground truth of the simulation: an upper bound on the checker-gated loop


@dataclass(frozen=True)
class ArmOutcome:
    """What the arm reports after an attempt. ``completed`` False: the primitive did not run to its end."""

    completed: bool
    message: str = ""
    ee_pose: Pose | None = None  # camera optical frame, at the end
    end_rgb: np.ndarray | None = None
    intrinsics: CameraIntrinsics | None = None
    success: bool | None = None  # the task's ground truth, when the arm knows it (simulation)
    true_cause: str | None = None  # the paper's label of the executed pose, when known


class Policy(Protocol):
    def predict(self, frame: Frame, object_name: str) -> Attempt: ...

    def correct(self, record: EpisodeRecord, hints: Hints) -> Attempt: ...


class Arm(Protocol):
    def execute(self, record: EpisodeRecord, attempt: Attempt) -> ArmOutcome: ...


class Checker(Protocol):
    def grade(self, record: EpisodeRecord, attempt: Attempt, outcome: ArmOutcome) -> Grade: ...


class Experts(Protocol):
    def hints(self, record: EpisodeRecord) -> Hints: ...


Learn = Callable[[EpisodeRecord, Attempt], None]


@dataclass(frozen=True)
class ModelChecker:
    """The checker as a plain call of the served model (anything with ``ModelServer.grade``)."""

    server: object

    def grade(self, record: EpisodeRecord, attempt: Attempt, outcome: ArmOutcome) -> Grade:
        return self.server.grade(
            outcome.end_rgb, record.object_name, outcome.ee_pose, outcome.intrinsics, record.frame.rgb
        )


@dataclass(frozen=True)
class Step:
    """One attempt of the episode: the answer, what the arm did, and the verdict that gated the loop."""

    index: int  # of the attempt in its episode (0: the policy's answer)
    attempt: Attempt
    outcome: ArmOutcome
    verdict: Verdict
    grade: Grade | None  # the checker's; None when the arm did not complete


@dataclass
class EpisodeRun:
    record: EpisodeRecord
    steps: list[Step] = field(default_factory=list)
    stopped: bool = False  # ``stop`` ended it before a correction it would have made

    @property
    def attempts(self) -> int:
        return len(self.steps)

    @property
    def verdicts(self) -> list[Verdict]:
        return [s.verdict for s in self.steps]

    @property
    def causes(self) -> list[str]:
        """The checker's cause per attempt ('unreachable' where the arm did not complete)."""
        return [s.grade.cause if s.grade is not None else Verdict.UNREACHABLE.value for s in self.steps]

    @property
    def success(self) -> bool:
        """Success of the last attempt: the ground truth when the arm knows it, else the verdict."""
        last = self.steps[-1]
        return last.outcome.success if last.outcome.success is not None else last.verdict is Verdict.SUCCESS

    def success_by_round(self, max_corrections: int) -> list[bool]:
        """Cumulative success after 0..max_corrections corrections (ground truth when known)."""
        out, done = [], False
        for k in range(max_corrections + 1):
            if k < len(self.steps):
                s = self.steps[k]
                done = done or (
                    s.outcome.success if s.outcome.success is not None else s.verdict is Verdict.SUCCESS
                )
            out.append(done)
        return out


def conclude(
    record: EpisodeRecord, attempt: Attempt, outcome: ArmOutcome, checker: Checker, gate: Gate = Gate.CHECKER
) -> Step:
    """The verdict on an attempt of ``record`` that the arm has run; the attempt records what happened.

    The checker grades an attempt the arm completed; ``gate`` picks whether its grade or the ground truth
    is the verdict. An attempt the arm did not complete is unreachable, without asking the checker.
    """
    grade = checker.grade(record, attempt, outcome) if outcome.completed else None
    if not outcome.completed:
        verdict = Verdict.UNREACHABLE
    elif gate is Gate.ORACLE and outcome.success is None:
        raise ValueError("the oracle gate needs an arm that knows the ground truth (simulation)")
    else:
        ok = outcome.success if gate is Gate.ORACLE else grade.success
        verdict = Verdict.SUCCESS if ok else Verdict.FAILURE
    attempt.executed = outcome.completed
    attempt.success = grade is not None and grade.success  # the checker's verdict, whatever the gate
    if grade is not None:
        attempt.cause, attempt.report_text = grade.cause, grade.text
        attempt.ee_contact, attempt.ee_up, attempt.ee_forward = (
            grade.ee_contact,
            grade.ee_up,
            grade.ee_forward,
        )
    else:
        attempt.cause, attempt.report_text = Verdict.UNREACHABLE.value, outcome.message
    index = next(i for i, a in enumerate(record.attempts) if a is attempt)
    return Step(index, attempt, outcome, verdict, grade)


def run_episode(
    record: EpisodeRecord,
    policy: Policy,
    arm: Arm,
    checker: Checker,
    experts: Experts,
    max_corrections: int,
    learn: Learn | None = None,
    gate: Gate = Gate.CHECKER,
    first: Attempt | None = None,
    on_step: Callable[[Step], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> EpisodeRun:
    """Run ``record``'s task: the policy's answer, then a correction after each failure (``max_corrections``).

    A completed attempt is always graded by the checker; ``gate`` picks which verdict decides. An attempt
    the arm did not complete is a failure to correct, without asking the checker. A correction that
    succeeds goes to ``learn``. ``first``: the policy's answer when the caller already has it.
    ``on_step`` sees every step as it ends (feedback, persistence); ``stop`` is asked before each
    correction (a cancelled action). The attempts are appended to ``record`` with their verdicts.
    """
    if max_corrections < 0:
        raise ValueError(f"max_corrections must be >= 0, got {max_corrections}")
    run = EpisodeRun(record)
    attempt = first if first is not None else policy.predict(record.frame, record.object_name)
    for k in range(max_corrections + 1):
        if k > 0:
            if stop is not None and stop():
                run.stopped = True
                break
            attempt = policy.correct(record, experts.hints(record))
        record.attempts.append(attempt)
        step = conclude(record, attempt, arm.execute(record, attempt), checker, gate)
        run.steps.append(step)
        if on_step is not None:
            on_step(step)
        if step.verdict is Verdict.SUCCESS:
            if k > 0 and learn is not None:
                learn(record, attempt)
            break
    return run
