"""The evaluation protocol: episodes in the embedded world through the loop the ROS nodes run.

Every episode is :func:`~sc_mllm_ros.episode.loop.run_episode`, the function the ``run_episode`` action
serves, with the embedded world as the arm, the RGB-D experts (``experts="rgbd"``, as deployed; the
simulation's noisy ground truth with ``experts="oracle"``, an upper bound) and the served model as policy and
checker; learning goes through :func:`~sc_mllm_ros.episode.learning.training_samples` and
the model's ``OnlineLearner``.

Choices the paper leaves open, made here:

* Corrections use both automatic experts' hints (as ``/request_correction`` with ``use_automatic_experts``),
  whatever cause the checker named; success after *r* corrections is cumulative (any attempt up to *r*),
  by the ground truth. The checker's failure verdict triggers each correction (``gate="checker"``, as
  deployed); ``gate="oracle"`` lets the ground truth trigger them instead, an upper bound.
* Continual learning adapts to *this* set of scenes (the paper's per-user customisation): each round runs the
  policy on every scene, corrects the failures (at most ``corrections_per_learning_episode`` times), learns
  from the successful corrections with the EMA, and the next round's uncorrected success is the round's score.
* Failure detection is scored on every executed attempt whose physical outcome has a paper label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
import time

import numpy as np
from tqdm import tqdm

from sc_mllm_ros.episode.learning import training_samples
from sc_mllm_ros.episode.loop import ArmOutcome, EpisodeRun, Gate, ModelChecker, run_episode
from sc_mllm_ros.episode.record import Attempt, EpisodeRecord, Frame
from sc_mllm_ros.episode.serving import expert_hints, Hints, ModelServer, resolve_hints
from sc_mllm_ros.episode.store import StoredSample
from sc_mllm_ros.experts import ExpertError, Experts
from sc_mllm_ros.geometry import angle_between_deg, deproject, Pose, rotation_from_up_forward
from sc_mllm_ros.sim import PositionExpert, PullWorld, RotationExpert, sample_scene

SPLITS = {"seen": "test_seen", "unseen": "test_unseen"}
ANSWER_FRAME = 336  # the paper's image size: pixel errors are reported in its frame


@dataclass
class EvalConfig:
    episodes: int = 20  # per split
    seed: int = 7
    correction_rounds: int = 5
    learning_rounds: int = 4
    corrections_per_learning_episode: int = 3
    image_size: int = 112
    position_noise_px: float = 2.0
    rotation_noise_deg: float = 6.0
    learning_rate: float = 1e-3
    ema_decay: float = 0.5
    steps_per_update: int = 4
    continual_learning: bool = True
    # what decides whether an attempt is corrected: "checker" (the model's verdict, as deployed) or
    # "oracle" (the simulation's ground truth: an upper bound on the checker-gated loop)
    gate: str = "checker"
    # the correction hints: "rgbd" (the experts of sc_mllm_ros.experts on the noisy frame, as deployed) or
    # "oracle" (the simulation's noisy ground truth: an upper bound on what the experts could give)
    experts: str = "rgbd"
    progress: bool = True


@dataclass
class EpisodeResult:
    split: str
    category: str
    scene_seed: int
    success_by_round: list[bool]  # [no correction, after 1, ..., after R corrections], cumulative
    contact_error_px: float  # first pose answer vs ground truth, in the 336 answer frame
    up_error_deg: float
    forward_error_deg: float
    gt_contact_frac: tuple[float, float]  # ground-truth contact as a fraction of the image (for the baseline)
    gt_up: list[float]
    gt_forward: list[float]
    detections: list[tuple[str, str]] = field(default_factory=list)  # (true cause, checker's cause)
    latency_s: list[float] = field(default_factory=list)
    random_success: bool = False


def true_cause(result) -> str | None:
    """The paper's label of an executed attempt, or None when physics and geometry disagree."""
    if result.success:
        return "success"
    return None if result.cause == "success" else result.cause


def random_pose(obs, rng: np.random.Generator) -> Pose:
    """A random policy: a random visible pixel lifted with depth, a random approach into the scene."""
    valid = np.argwhere(np.isfinite(obs.depth) & (obs.depth > 0))
    row, col = valid[rng.integers(len(valid))]
    up = rng.normal(size=3)
    up[2] = abs(up[2])  # towards the scene, as any sane approach
    forward = np.cross(up, rng.normal(size=3))
    point = deproject((float(row), float(col)), float(obs.depth[row, col]), obs.intrinsics)
    return Pose(point, rotation_from_up_forward(up, forward))


@dataclass
class SimArm:
    """The embedded world as the loop's arm: it knows the ground truth of every attempt."""

    world: PullWorld

    def execute(self, record: EpisodeRecord, attempt: Attempt) -> ArmOutcome:
        result = self.world.execute(attempt.pose)
        return ArmOutcome(
            completed=True,
            message=result.message,
            ee_pose=result.ee_pose,
            end_rgb=result.end_obs.rgb,
            intrinsics=self.world.intrinsics,
            success=result.success,
            true_cause=true_cause(result),
        )


@dataclass
class SimExperts:
    """The simulation's automatic position and rotation experts (noisy ground truth)."""

    world: PullWorld
    position: PositionExpert
    rotation: RotationExpert
    rng: np.random.Generator

    def hints(self, record: EpisodeRecord) -> Hints:
        gt = self.world.ground_truth
        contact = self.position.hint(gt, self.rng)
        up, forward = self.rotation.hint(gt, self.rng)
        return resolve_hints(record, contact=contact, up=up, forward=forward, feedback="automatic experts")


@dataclass
class RecordedFrameExperts:
    """The RGB-D experts on the episode's recorded noisy frame: all a real cell has (no ground truth)."""

    experts: Experts

    def hints(self, record: EpisodeRecord) -> Hints:
        f = record.frame
        try:
            h = self.experts.hints(f.rgb, f.depth, f.intrinsics, record.task)
        except ExpertError as err:  # a refusal leaves the correction to the model's own last answer
            return resolve_hints(record, feedback=f"automatic experts refused: {err}")
        return expert_hints(record, h)


class Evaluator:
    """Runs episodes of one model on scenes drawn from ``config.seed``."""

    def __init__(self, model, config: EvalConfig) -> None:
        self.model = model
        self.cfg = config
        self.server = ModelServer(model)
        self.checker = ModelChecker(self.server)
        self.gate = Gate(config.gate)
        self.position_expert = PositionExpert(config.position_noise_px)
        self.rotation_expert = RotationExpert(config.rotation_noise_deg)
        rgbd = config.experts == "rgbd"
        self.rgbd_experts = RecordedFrameExperts(Experts.from_pretrained()) if rgbd else None

    def scenes(self, split: str) -> list:
        seeds = np.random.SeedSequence([self.cfg.seed, list(SPLITS).index(split)]).generate_state(
            self.cfg.episodes
        )
        return [sample_scene(int(s), split=SPLITS[split]) for s in seeds]

    def _frame(self, obs) -> Frame:
        return Frame(obs.rgb, obs.depth, obs.intrinsics)

    def run(
        self,
        world: PullWorld,
        record: EpisodeRecord,
        max_corrections: int,
        rng: np.random.Generator,
        learn=None,
        first: Attempt | None = None,
    ) -> EpisodeRun:
        """One episode through :func:`~sc_mllm_ros.episode.loop.run_episode` on ``world``."""
        experts = self.rgbd_experts or SimExperts(world, self.position_expert, self.rotation_expert, rng)
        return run_episode(
            record,
            self.server,
            SimArm(world),
            self.checker,
            experts,
            max_corrections,
            learn,
            self.gate,
            first,
        )

    def episode(self, split: str, scene, index: int) -> EpisodeResult:
        rng = np.random.default_rng([self.cfg.seed, index, list(SPLITS).index(split)])
        with PullWorld(scene, image_size=self.cfg.image_size) as world:
            obs = world.reset()
            gt = world.ground_truth
            record = EpisodeRecord(
                f"{split}-{index}", f"pull the {world.object_name}", world.object_name, self._frame(obs)
            )
            h, w = obs.rgb.shape[:2]
            first = self.server.predict(record.frame, record.object_name)
            scale = ANSWER_FRAME / np.array([h, w])
            out = EpisodeResult(
                split=split,
                category=scene.category,
                scene_seed=scene.seed,
                success_by_round=[],
                contact_error_px=float(np.linalg.norm((np.array(first.contact) - gt.contact) * scale)),
                up_error_deg=angle_between_deg(first.up, gt.up),
                forward_error_deg=angle_between_deg(first.forward, gt.forward),
                gt_contact_frac=(float(gt.contact[0] / h), float(gt.contact[1] / w)),
                gt_up=np.asarray(gt.up).tolist(),
                gt_forward=np.asarray(gt.forward).tolist(),
            )
            run = self.run(world, record, self.cfg.correction_rounds, rng, first=first)
            out.success_by_round = run.success_by_round(self.cfg.correction_rounds)
            out.latency_s = [s.attempt.latency_s for s in run.steps]
            out.detections = [
                (s.outcome.true_cause, s.grade.cause)
                for s in run.steps
                if s.grade is not None and s.outcome.true_cause is not None
            ]
            out.random_success = bool(world.execute(random_pose(obs, rng)).success)
        return out

    def run_split(self, split: str) -> list[EpisodeResult]:
        scenes = self.scenes(split)
        bar = tqdm(scenes, desc=f"eval {split}", unit="episode", disable=not self.cfg.progress)
        return [self.episode(split, scene, i) for i, scene in enumerate(bar)]

    def uncorrected_success(self, split: str, scenes: list) -> float:
        wins = 0
        for scene in scenes:
            with PullWorld(scene, image_size=self.cfg.image_size) as world:
                obs = world.reset()
                attempt = self.server.predict(self._frame(obs), world.object_name)
                wins += world.execute(attempt.pose).success
        return wins / max(len(scenes), 1)

    def continual_learning(self, split: str, learner) -> tuple[list[float], list[dict]]:
        """Rounds of act -> correct -> learn on ``split``'s scenes; uncorrected success after each round."""
        scenes = self.scenes(split)
        scores, log = [], []
        samples: list = []

        def learn(record: EpisodeRecord, attempt: Attempt) -> None:
            samples.extend(training_samples(StoredSample.from_attempt(record, attempt)))
        for k in range(self.cfg.learning_rounds + 1):
            samples.clear()
            wins = 0
            bar = tqdm(scenes, desc=f"learn {split} round {k}", unit="episode", disable=not self.cfg.progress)
            for i, scene in enumerate(bar):
                rng = np.random.default_rng([self.cfg.seed, 1000 + k, i])
                with PullWorld(scene, image_size=self.cfg.image_size) as world:
                    obs = world.reset()
                    record = EpisodeRecord(f"cl-{split}-{k}-{i}", "", world.object_name, self._frame(obs))
                    run = self.run(
                        world, record, self.cfg.corrections_per_learning_episode, rng, learn=learn
                    )
                wins += run.success_by_round(0)[0]
            if k > 0:
                scores.append(wins / len(scenes))
            if k == self.cfg.learning_rounds:
                break
            t0 = time.perf_counter()
            # nothing to learn when every attempt succeeded; a copy, as the list is refilled next round
            loss = learner.update(list(samples)) if samples else None
            self.server.adapter_version = learner.version
            log.append(
                {
                    "round": k + 1,
                    "samples": len(samples),
                    "loss": loss,
                    "update_s": time.perf_counter() - t0,
                    "success_before": wins / len(scenes),
                }
            )
        return scores, log


def summarize(results: list[EpisodeResult]) -> dict:
    """Success rates, pose errors beside the predict-the-mean baseline, and failure-detection counts."""
    if not results:
        return {}
    by_round = np.array([r.success_by_round for r in results], dtype=float)
    fracs = np.array([r.gt_contact_frac for r in results])
    mean_frac = fracs.mean(axis=0)
    mean_up = np.mean([r.gt_up for r in results], axis=0)
    mean_forward = np.mean([r.gt_forward for r in results], axis=0)
    return {
        "episodes": len(results),
        "success_no_correction": float(by_round[:, 0].mean()),
        "success_after_corrections": by_round[:, 1:].mean(axis=0).tolist(),
        "random_policy": float(np.mean([r.random_success for r in results])),
        "pose_error": {
            "contact_px_mean": float(np.mean([r.contact_error_px for r in results])),
            "contact_px_median": float(np.median([r.contact_error_px for r in results])),
            "up_deg_mean": float(np.mean([r.up_error_deg for r in results])),
            "forward_deg_mean": float(np.mean([r.forward_error_deg for r in results])),
        },
        "mean_baseline": {
            "contact_px_mean": float(np.mean(np.linalg.norm((fracs - mean_frac) * ANSWER_FRAME, axis=1))),
            "up_deg_mean": float(np.mean([angle_between_deg(r.gt_up, mean_up) for r in results])),
            "forward_deg_mean": float(
                np.mean([angle_between_deg(r.gt_forward, mean_forward) for r in results])
            ),
        },
        "detections": Counter(d for r in results for d in r.detections),
        "latency_s": [x for r in results for x in r.latency_s],
        "per_category": {
            cat: float(np.mean([r.success_by_round[0] for r in results if r.category == cat]))
            for cat in sorted({r.category for r in results})
        },
    }


def episode_rows(results: list[EpisodeResult]) -> list[dict]:
    return [asdict(r) for r in results]
