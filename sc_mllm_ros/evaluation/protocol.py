"""The evaluation protocol (v2): the deployed loop, its bounds and baselines on the same scenes.

Every episode is :func:`~sc_mllm_ros.episode.loop.run_episode`, the function the ``run_episode`` action
serves, with the embedded world as the arm, the RGB-D experts on the recorded noisy frame (as deployed;
``experts="oracle"``: the simulation's noisy ground truth, an upper bound) and the served model as policy
and checker. Nothing in the loop reads the ground truth: it only labels what happened.

On each scene of a split, in one process and one world:

* **checker-gated**: the checker's failure verdict triggers each correction, up to ``correction_rounds``;
  the outcome after r corrections is the ground truth of the attempt at which the loop stopped (a false
  "success" verdict ends the episode failed; a false "failure" verdict on a real success leads to a
  further attempt, whose ground truth counts);
* **oracle-gated**: the ground truth triggers the corrections instead (an upper bound on the gating);
* **first try**, **expert_alone**, the **gt_pose** ceiling and the trivial policies of
  :mod:`~sc_mllm_ros.evaluation.baselines` (called, not copied), each one pull on the same scene;
* the checker's grade of every attempt of the checker-gated loop, and the two ablations (end image
  replaced by flat grey; by the initial image).

An attempt the arm cannot reach is the executor's verdict: the checker is not asked and the loop corrects.

**Continual learning without leakage** (on ``cl_split``): each round streams over scene set A through the
checker-gated loop, learns (``OnlineLearner``, EMA) only from corrections the checker called successful,
then scores the first try on A (adaptation), on a disjoint set B of the same categories (generalisation)
and on held-out seen scenes (retention). Round 0 is the model as given.

**Scenes**: one seed stream per (role, split, purpose) from ``seed``: ``split_role="validation"`` and
``"test"`` never share a scene seed, nor do set A, set B, the retention set and the main scenes (checked,
:func:`scene_plan`). Choose the checker threshold, the steps per update and the EMA decay on validation
scenes (the validation report proposes a threshold), then run the test role once with them.
"""

from __future__ import annotations

from collections.abc import Iterable
import copy
from dataclasses import asdict, dataclass, field
import multiprocessing
from pathlib import Path
import tempfile
import time

import numpy as np
from tqdm import tqdm

from sc_mllm_ros.episode.learning import training_samples
from sc_mllm_ros.episode.loop import ArmOutcome, Gate, ModelChecker, run_episode, Step
from sc_mllm_ros.episode.record import Attempt, BadInput, EpisodeRecord, Frame
from sc_mllm_ros.episode.rollouts import SimArm
from sc_mllm_ros.episode.serving import FrameExperts, Hints, ModelServer, resolve_hints
from sc_mllm_ros.episode.store import StoredSample
from sc_mllm_ros.evaluation import baselines
from sc_mllm_ros.evaluation.metrics import FAILURE_CAUSES, stopped_outcomes, UNLABELLED, UNREACHABLE
from sc_mllm_ros.geometry import angle_between_deg
from sc_mllm_ros.sim import PositionExpert, PullWorld, RotationExpert, sample_scene

SPLITS = baselines.SPLITS  # seen, unseen, external (benchmark v2)
ROLES = ("validation", "test")
PURPOSES = ("main", "cl_a", "cl_b", "cl_retention")
TRIVIAL = ("image_centre_depth_normal", "noun_mean_pose", "random_object_pixel_depth_normal")
BASELINES = ("gt_pose", "expert_alone", *TRIVIAL)  # the fixed policies run beside the loop
ANSWER_FRAME = 336  # the paper's image size: pixel errors are reported in its frame


@dataclass
class EvalConfig:
    # The standard run (make eval): 200 scenes per split (the minimum) and 100 per learning set.
    # Measured: a scene costs ~1.8 CPU s and a learning task ~0.3 CPU s with the shipped model (more attempts
    # reach the part with a better model: ~2.5 CPU s estimated), so ~14-21 min on 2 free cores (README).
    episodes: int = 200  # scenes per split (the main comparison)
    seed: int = 7
    split_role: str = "test"  # "validation": scenes for choices (threshold, steps, EMA decay)
    splits: tuple[str, ...] = ("seen", "unseen", "external")
    correction_rounds: int = 5
    learning_rounds: int = 4  # 0 skips continual learning
    cl_episodes: int = 100  # scenes in each of set A, set B and the retention set
    cl_split: str = "unseen"
    corrections_per_learning_episode: int = 3
    checker_threshold: float | None = None  # None: the model's own (config.checker_threshold)
    ablations: bool = True
    mean_scenes: int = 60  # training scenes behind noun_mean_pose
    image_size: int = 112
    position_noise_px: float = 2.0
    rotation_noise_deg: float = 6.0
    learning_rate: float = 1e-3
    ema_decay: float = 0.5
    steps_per_update: int = 4
    # the correction hints: "rgbd" (the experts of sc_mllm_ros.experts on the noisy frame, as deployed) or
    # "oracle" (the simulation's noisy ground truth: an upper bound on what the experts could give)
    experts: str = "rgbd"
    workers: int = 2
    progress: bool = True

    def validate(self) -> EvalConfig:
        if self.split_role not in ROLES:
            raise ValueError(f"split_role must be one of {ROLES}, got {self.split_role!r}")
        unknown = set(self.splits) - set(SPLITS)
        if unknown or not self.splits:
            raise ValueError(f"splits must be among {tuple(SPLITS)}, got {self.splits}")
        if self.cl_split not in SPLITS:
            raise ValueError(f"cl_split must be one of {tuple(SPLITS)}, got {self.cl_split!r}")
        if self.experts not in ("rgbd", "oracle"):
            raise ValueError(f"experts must be 'rgbd' or 'oracle', got {self.experts!r}")
        for name in ("episodes", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.mean_scenes < 1:
            raise ValueError(
                f"mean_scenes must be at least 1 (noun_mean_pose needs them), got {self.mean_scenes}"
            )
        for name in ("correction_rounds", "learning_rounds", "cl_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.checker_threshold is not None and not 0.0 <= self.checker_threshold <= 1.0:
            raise ValueError(f"checker_threshold must be in [0, 1], got {self.checker_threshold}")
        return self


def scene_seeds(seed: int, role: str, split: str, purpose: str, n: int) -> list[int]:
    """The first ``n`` scene seeds of the stream of (``role``, ``split``, ``purpose``)."""
    ss = np.random.SeedSequence([seed, ROLES.index(role), list(SPLITS).index(split), PURPOSES.index(purpose)])
    return [int(s) for s in ss.generate_state(n)] if n else []


def _role_plan(cfg: EvalConfig, role: str) -> dict[str, dict[str, list[int]]]:
    plan = {"main": {s: scene_seeds(cfg.seed, role, s, "main", cfg.episodes) for s in cfg.splits}}
    if cfg.learning_rounds > 0:
        n = cfg.cl_episodes
        plan["cl_a"] = {cfg.cl_split: scene_seeds(cfg.seed, role, cfg.cl_split, "cl_a", n)}
        plan["cl_b"] = {cfg.cl_split: scene_seeds(cfg.seed, role, cfg.cl_split, "cl_b", n)}
        plan["cl_retention"] = {"seen": scene_seeds(cfg.seed, role, "seen", "cl_retention", n)}
    return plan


def scene_plan(cfg: EvalConfig) -> dict[str, dict[str, list[int]]]:
    """Scene seeds per purpose and split of ``cfg.split_role``.

    Raises if a scene would be in two sets, or in this role's plan and the other role's of the same size
    (a test scene seen while choosing would leak the choice).
    """
    used: dict[tuple[str, int], str] = {}
    for role in (r for r in ROLES if r != cfg.split_role):
        for purpose, by_split in _role_plan(cfg, role).items():
            used.update({(split, s): f"{role} {purpose}" for split, seeds in by_split.items() for s in seeds})
    plan = _role_plan(cfg, cfg.split_role)
    for purpose, by_split in plan.items():
        for split, seeds in by_split.items():
            for s in seeds:
                if (split, s) in used:
                    where = used[(split, s)]
                    raise ValueError(
                        f"scene seed {s} of {split} is in {purpose} and in {where}: pick another --seed"
                    )
                used[(split, s)] = f"{cfg.split_role} {purpose}"
    return plan


@dataclass
class SimExperts:
    """The simulation's automatic position and rotation experts (noisy ground truth): an upper bound."""

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
class GatedRun:
    """One loop run: its steps (kept when a later answer had no goal), what it learned, whether it was cut."""

    steps: list[Step] = field(default_factory=list)
    learned: list[tuple[EpisodeRecord, Attempt]] = field(default_factory=list)
    cut: bool = False  # an answer had no goal (no depth at its contact): the episode ended failed

    def ground_truth(self) -> list[bool]:
        return [bool(s.outcome.success) for s in self.steps]

    def learned_failures(self) -> list[bool]:
        """Per learned correction: whether it was in fact a failure (the ground truth)."""
        outcome = {id(s.attempt): s.outcome for s in self.steps}
        return [not outcome[id(a)].success for _, a in self.learned]


def gated_run(
    record: EpisodeRecord,
    policy,
    arm,
    checker,
    experts,
    max_corrections: int,
    gate: Gate,
    first: Attempt | None = None,
    learn: bool = False,
) -> GatedRun:
    """:func:`run_episode` as deployed, keeping what the evaluation scores.

    ``learn``: collect the corrections the loop hands to learning: with ``Gate.CHECKER``, exactly those the
    checker called successful, whatever the ground truth.
    """
    out = GatedRun()

    def keep(record: EpisodeRecord, attempt: Attempt) -> None:
        out.learned.append((record, attempt))

    try:
        run_episode(
            record,
            policy,
            arm,
            checker,
            experts,
            max_corrections,
            keep if learn else None,
            gate,
            first,
            on_step=out.steps.append,
        )
    except BadInput:  # raised before the attempt is executed: the steps so far stand
        out.cut = True
    return out


def _row_label(outcome: ArmOutcome) -> str:
    """The attempt's true row in the confusion matrix."""
    if not outcome.completed:
        return UNREACHABLE
    if outcome.success:
        return "success"
    return outcome.true_cause if outcome.true_cause in FAILURE_CAUSES else UNLABELLED


class Runner:
    """One model served with its checker and experts; runs the scenes of the protocol (one process)."""

    def __init__(self, model, cfg: EvalConfig) -> None:
        if cfg.checker_threshold is not None:
            # the model attribute the deployed checker reads, so the loop below is the graph's loop
            model.config.checker_threshold = cfg.checker_threshold
        self.cfg = cfg
        self.server = ModelServer(model)
        self.checker = ModelChecker(self.server)
        from sc_mllm_ros.experts import Experts

        self.experts = Experts.from_pretrained()
        self.rgbd = FrameExperts(self.experts)  # the loop's, as deployed
        self.position, self.rotation = (
            PositionExpert(cfg.position_noise_px),
            RotationExpert(cfg.rotation_noise_deg),
        )

    def use_adapter(self, adapter: tuple[str, int] | None) -> None:
        """Serve the released adapter ``(directory, version)`` (a newer one than served; None: as loaded)."""
        if adapter is not None:
            self.server.swap_adapter(*adapter)

    def _world(self, split: str, sseed: int) -> PullWorld:
        return PullWorld(sample_scene(sseed, SPLITS[split]), image_size=self.cfg.image_size)

    @staticmethod
    def _record(name: str, world: PullWorld, obs) -> EpisodeRecord:
        return EpisodeRecord(
            name,
            f"pull the {world.object_name}",
            world.object_name,
            Frame(obs.rgb, obs.depth, obs.intrinsics),
        )

    def _run(self, world, record, rounds: int, gate: Gate, rng, first=None, learn=False) -> GatedRun:
        experts = (
            self.rgbd if self.cfg.experts == "rgbd" else SimExperts(world, self.position, self.rotation, rng)
        )
        return gated_run(
            record, self.server, SimArm(world), self.checker, experts, rounds, gate, first, learn
        )

    def scene(self, split: str, index: int, sseed: int, means: dict) -> dict:
        """All the main comparison measures on one scene, as JSON; ``means``: noun_mean_pose's."""
        rounds = self.cfg.correction_rounds
        rng = np.random.default_rng([sseed, 17])
        with self._world(split, sseed) as world:
            obs = world.reset()
            gt = world.ground_truth
            record = self._record(f"{split}-{index}", world, obs)
            out = {"split": split, "index": index, "scene_seed": sseed, "category": world.scene.category}
            auto = self._expert_output(record)
            out["baselines"] = baselines.policy_outcomes(world, obs, sseed, means, BASELINES, auto)
            try:
                first = self.server.predict(record.frame, record.object_name)
            except BadInput as err:  # no goal from the policy's answer: every variant of the loop fails here
                out.update(first_try=False, checker_gated=[False] * rounds, oracle_gated=[False] * rounds)
                out.update(attempts=[], no_goal=str(err))
                return out
            h, w = obs.rgb.shape[:2]
            scale = ANSWER_FRAME / np.array([h, w])
            out["pose_error"] = {
                "contact_px": float(np.linalg.norm((np.array(first.contact) - gt.contact) * scale)),
                "up_deg": angle_between_deg(first.up, gt.up),
                "forward_deg": angle_between_deg(first.forward, gt.forward),
            }
            out["gt"] = {
                "contact_frac": [float(gt.contact[0] / h), float(gt.contact[1] / w)],
                "up": np.asarray(gt.up).tolist(),
                "forward": np.asarray(gt.forward).tolist(),
            }
            checked = self._run(world, record, rounds, Gate.CHECKER, rng, copy.deepcopy(first))
            curve = stopped_outcomes(checked.ground_truth(), rounds, checked.cut)
            out["first_try"], out["checker_gated"] = curve[0], curve[1:]
            out["checker_attempts"] = len(checked.steps)
            oracle_record = self._record(f"{split}-{index}-oracle", world, obs)
            oracle = self._run(world, oracle_record, rounds, Gate.ORACLE, rng, copy.deepcopy(first))
            out["oracle_gated"] = stopped_outcomes(oracle.ground_truth(), rounds, oracle.cut)[1:]
            out["attempts"] = [self._graded(record, s) for s in checked.steps]
            out["latency_s"] = [s.attempt.latency_s for s in checked.steps]
        return out

    def _expert_output(self, record: EpisodeRecord):
        """The RGB-D experts' output on the recorded frame for ``expert_alone`` (None: they refused it)."""
        from sc_mllm_ros.experts import ExpertError

        f = record.frame
        try:
            return self.experts.hints(f.rgb, f.depth, f.intrinsics, record.task)
        except ExpertError:
            return None

    def _graded(self, record: EpisodeRecord, step: Step) -> dict:
        """One attempt of the loop for the checker's scores: truth, grade, confidence, the ablations."""
        o, g = step.outcome, step.grade
        row = {
            "index": step.index,
            "truth": _row_label(o),
            "success": bool(o.success),
            "cause": UNREACHABLE if g is None else g.cause,
            "confidence": None if g is None else g.confidence,
        }
        if self.cfg.ablations and g is not None:
            grey = np.full_like(o.end_rgb, 128)
            for name, end in (("grey_end", grey), ("initial_as_end", record.frame.rgb)):
                a = self.server.grade(end, record.object_name, o.ee_pose, o.intrinsics, record.frame.rgb)
                row[name] = {"cause": a.cause, "confidence": a.confidence}
        return row

    def first_try(self, split: str, sseed: int) -> bool:
        """The policy's first answer executed once (no correction): its ground truth."""
        with self._world(split, sseed) as world:
            obs = world.reset()
            try:
                attempt = self.server.predict(self._record("first", world, obs).frame, world.object_name)
            except BadInput:
                return False
            return bool(world.execute(attempt.pose, render_end=False).success)

    def stream(self, split: str, sseed: int, corrections: int) -> dict:
        """One continual-learning episode: the first try's truth and the corrections the checker approved."""
        rng = np.random.default_rng([sseed, 23])
        with self._world(split, sseed) as world:
            record = self._record(f"cl-{split}-{sseed}", world, world.reset())
            run = self._run(world, record, corrections, Gate.CHECKER, rng, learn=True)
        truth = run.ground_truth()
        return {
            "first_try": bool(truth[0]) if truth else False,
            "learned": [StoredSample.from_attempt(r, a) for r, a in run.learned],
            "learned_failed": run.learned_failures(),
        }


# One Runner per worker process (the model, the experts and the noun means are loaded once).
_RUNNER: Runner | None = None


def _init_worker(model_path: str | None, cfg: EvalConfig) -> None:
    import torch

    from sc_mllm_ros.model import SCMLLM

    global _RUNNER
    # one thread per process: two spinning OpenMP threads on 2 busy cores are ~10x slower
    torch.set_num_threads(1)
    _RUNNER = Runner(SCMLLM.from_pretrained(model_path), cfg)


def _call(task: tuple[str, tuple[str, int] | None, tuple]) -> tuple[object, float]:
    """Run one task on this process's Runner; its result and the CPU seconds it took (load-independent)."""
    method, adapter, args = task
    t0 = time.process_time()
    _RUNNER.use_adapter(adapter)
    return getattr(_RUNNER, method)(*args), time.process_time() - t0


class Workers:
    """The protocol's scenes over ``n`` processes (``n == 1``: in this process), with progress bars."""

    def __init__(self, model_path: str | None, cfg: EvalConfig) -> None:
        self.cfg = cfg
        self.pool = None
        # per part of the run: tasks, wall seconds and the CPU seconds the tasks used (so a run on a shared
        # machine still tells what the run costs on free cores)
        self.timings: dict[str, dict[str, float]] = {}
        if cfg.workers > 1:
            ctx = multiprocessing.get_context("spawn")
            self.pool = ctx.Pool(cfg.workers, _init_worker, (model_path, cfg))
        else:
            _init_worker(model_path, cfg)

    def imap(self, fn, items: list) -> Iterable:
        """``fn`` over ``items`` in the workers, in order (``fn`` must be a module-level function)."""
        return self.pool.imap(fn, items) if self.pool else map(fn, items)

    def run(self, tasks: list, desc: str, part: str) -> list:
        """Runner tasks ``(method, adapter, args)`` with a progress bar; their time goes to ``part``."""
        t0 = time.perf_counter()
        results = self.imap(_call, tasks)
        done = list(tqdm(results, total=len(tasks), desc=desc, unit="episode", disable=not self.cfg.progress))
        self.account(part, time.perf_counter() - t0, sum(cpu for _, cpu in done), len(tasks))
        return [r for r, _ in done]

    def account(self, part: str, wall_s: float, cpu_s: float, tasks: int = 0) -> None:
        t = self.timings.setdefault(part, {"tasks": 0, "wall_s": 0.0, "cpu_s": 0.0})
        t["tasks"] += tasks
        t["wall_s"] += wall_s
        t["cpu_s"] += cpu_s

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None and self.pool is not None:
            self.pool.terminate()
        self.close()


def continual_learning(workers: Workers, learner, plan: dict, cfg: EvalConfig, adapters: Path) -> dict:
    """Rounds 0..R: stream over set A (learning), score first tries on A, B and the retention set."""
    from sc_mllm_ros.episode.adapters import AdapterStore

    store, adapter = AdapterStore(adapters), None
    split = cfg.cl_split
    sets = {
        "set_a": plan["cl_a"][split],
        "set_b": plan["cl_b"][split],
        "retention_seen": plan["cl_retention"]["seen"],
    }
    out: dict = {"split": split, "scenes": {k: len(v) for k, v in sets.items()}, "log": []}
    out.update({k: [] for k in sets})
    learned = failed = 0
    for k in range(cfg.learning_rounds + 1):
        last = k == cfg.learning_rounds
        if last:  # after the last update only the scores are needed
            a_scores = workers.run(
                [("first_try", adapter, (split, s)) for s in sets["set_a"]],
                f"CL round {k} set A",
                "continual_learning",
            )
        else:
            tasks = [
                ("stream", adapter, (split, s, cfg.corrections_per_learning_episode)) for s in sets["set_a"]
            ]
            streamed = workers.run(tasks, f"CL round {k} stream A", "continual_learning")
            a_scores = [r["first_try"] for r in streamed]
        out["set_a"].append(a_scores)
        out["set_b"].append(
            workers.run(
                [("first_try", adapter, (split, s)) for s in sets["set_b"]],
                f"CL round {k} set B",
                "continual_learning",
            )
        )
        out["retention_seen"].append(
            workers.run(
                [("first_try", adapter, ("seen", s)) for s in sets["retention_seen"]],
                f"CL round {k} retention",
                "continual_learning",
            )
        )
        if last:
            break
        samples = [t for r in streamed for s in r["learned"] for t in training_samples(s)]
        round_failed = sum(f for r in streamed for f in r["learned_failed"])
        round_learned = sum(len(r["learned"]) for r in streamed)
        learned, failed = learned + round_learned, failed + round_failed
        t0, c0 = time.perf_counter(), time.process_time()
        loss = learner.update(samples) if samples else None  # nothing approved: nothing to learn
        store.write(learner.model, learner.version, {"round": k + 1, "samples": len(samples)})
        adapter = (str(store.path(learner.version)), learner.version)
        workers.account("continual_learning", time.perf_counter() - t0, time.process_time() - c0)
        out["log"].append(
            {
                "round": k + 1,
                "corrections_learned": round_learned,
                "of_which_failures": round_failed,
                "samples": len(samples),
                "loss": loss,
                "update_s": time.perf_counter() - t0,
            }
        )
    out["learned_failures"] = {"learned": learned, "failures": failed}
    return out


def evaluate(model_path: str | None, cfg: EvalConfig) -> dict:
    """Run the protocol; the raw results (scenes per split, continual learning, timings) for the report."""
    from sc_mllm_ros.model import OnlineLearner, SCMLLM

    cfg.validate()
    plan = scene_plan(cfg)
    model = SCMLLM.from_pretrained(model_path)  # the learner's own copy; workers load its releases
    results: dict = {"scenes": {}, "continual_learning": None, "plan": plan}
    with Workers(model_path, cfg) as workers:
        t0 = time.perf_counter()
        means = baselines.train_noun_means(cfg.seed, cfg.mean_scenes, workers.imap)
        # wall only: it includes the workers' start-up (imports, model and experts loaded)
        workers.account("start-up and noun means", time.perf_counter() - t0, 0.0, cfg.mean_scenes)
        for split, seeds in plan["main"].items():
            tasks = [("scene", None, (split, i, s, means)) for i, s in enumerate(seeds)]
            results["scenes"][split] = workers.run(tasks, f"eval {split}", split)
        if cfg.learning_rounds > 0:
            learner = OnlineLearner(
                model, lr=cfg.learning_rate, ema_decay=cfg.ema_decay, steps_per_update=cfg.steps_per_update
            )
            with tempfile.TemporaryDirectory(prefix="sc_mllm_eval_adapters_") as tmp:
                results["continual_learning"] = continual_learning(workers, learner, plan, cfg, Path(tmp))
    results["timings"] = workers.timings
    threshold = model.config.checker_threshold if cfg.checker_threshold is None else cfg.checker_threshold
    results["model"] = {"checker_threshold": threshold, "checker_views": model.config.checker_views}
    results["config"] = {k: v for k, v in asdict(cfg).items() if k != "progress"}
    return results


def episode_rows(results: dict) -> Iterable[dict]:
    """One JSON row per main scene (episodes.jsonl)."""
    for rows in results["scenes"].values():
        yield from rows
