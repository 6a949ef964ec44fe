"""Dataset generation for the three prompt families (pose, failure, correction), sharded JSONL + PNG.

On-disk format ``sc_mllm_dataset/1`` (the contract with the model side)::

    DIR/manifest.json                       format, seed, image_size [H, W], counts {split: {family: n}},
                                            categories {seen, unseen}, shards {split: [relative paths]}
    DIR/<split>/shard-NNNNN.jsonl           one record per line
    DIR/<split>/images/<id>_rgb.png         uint8 RGB
    DIR/<split>/images/<id>_depth.png       uint16 depth in millimetres

Every scene gives a "pose" record (initial image, ground-truth answer), a "correction" record and two
"failure" records:

* the correction's hints come from the RGB-D experts (``sc_mllm_ros.experts``) on the noisy initial frame,
  as deployed: one of their candidates (the best half of the time) with the plane fitted there. That hint
  pose is executed; the answer is the hint's contact where the pull succeeded, else the ground-truth pose
  (always with the ground-truth orientation), so the model learns to follow a good hint and to move off a
  bad one;
* one failure record is that executed hint (the near misses and successes a deployed loop produces), the
  other a pose perturbed to produce a chosen cause (the causes cycle so each category sees all four).
  Both keep ``initial_rgb``, the pose record's image, for a checker that compares before and after.

Everything follows from the seed: scene ``i`` of a split has its own seed, workers only return encoded
records, and the parent writes them in scene order, so 1 or N workers give byte-identical datasets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
import functools
import json
import multiprocessing
import os

import cv2
import numpy as np
from tqdm import tqdm

from sc_mllm_ros.geometry import lift_pixel, Pose, project, rotation_from_up_forward
from sc_mllm_ros.sim.labels import (
    CAUSES,
    GroundTruth,
    in_mask,
    PositionExpert,
    rotate_towards,
    ROTATION_LIMIT_DEG,
)
from sc_mllm_ros.sim.objects import categories_for, sample_scene, SEEN_CATEGORIES, SPLITS, UNSEEN_CATEGORIES
from sc_mllm_ros.sim.world import PullWorld

FORMAT = "sc_mllm_dataset/1"
FAMILIES = ("pose", "correction", "failure")


@dataclass(frozen=True)
class GenConfig:
    num: int  # training records
    out: str
    seed: int = 0
    workers: int = 2
    image_size: int = 224
    test_num: int | None = None  # records per test split (default 5% of num, at least 3)
    shard_size: int = 1000
    experts: str | None = None  # the RGB-D experts' weights (None: the shipped ones)
    best_candidate_share: float = 0.5  # how often the correction's hint is the experts' best candidate
    policy: str | None = None  # a model folder: record its own attempts instead (episode/rollouts.py)
    max_corrections: int = 2  # with ``policy``: corrections after each failed attempt
    failure_tries: int = 4  # perturbations tried per scene to get the wanted failure cause

    def split_counts(self) -> dict[str, int]:
        if self.num < 1:
            raise ValueError(f"--num must be >= 1, got {self.num}")
        test = max(3, round(0.05 * self.num)) if self.test_num is None else self.test_num
        if test < 0:
            raise ValueError(f"--test-num must be >= 0, got {test}")
        return {"train": self.num, "test_seen": test, "test_unseen": test}


def scene_seed(seed: int, split: str, index: int) -> int:
    """The seed of scene ``index`` of ``split`` (independent streams per split)."""
    return int(np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)]).generate_state(1)[0])


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _images(rgb: np.ndarray, depth: np.ndarray) -> tuple[bytes, bytes]:
    depth_mm = np.clip(np.nan_to_num(depth, nan=0.0) * 1000.0, 0, 65535).astype(np.uint16)
    return _png(np.ascontiguousarray(rgb[..., ::-1])), _png(depth_mm)


def _vec(v) -> list[float]:
    return [round(float(x), 6) for x in v]


def _perturbed_pose(gt: GroundTruth, depth: np.ndarray, intr, cause: str, rng: np.random.Generator):
    """A camera-frame pose whose paper label is ``cause`` (position: off the part; rotation: > 30 deg)."""
    mask = gt.affordance_mask
    if cause in ("position", "position and rotation"):
        # A pixel on something else near the part (its carcass, the pedestal, the floor).
        near = cv2.dilate(mask.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
        ring = near & ~cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        rows, cols = np.nonzero(ring & np.isfinite(depth) & (depth < 5.0))
        if rows.size == 0:
            return None
        i = int(rng.integers(rows.size))
        pixel = (float(rows[i]), float(cols[i]))
    else:
        pixel = PositionExpert(noise_px=2.0).hint(gt, rng)
    try:
        point = lift_pixel(depth, pixel, intr)
    except ValueError:  # no depth there (dropout): try another perturbation
        return None
    if cause in ("rotation", "position and rotation"):
        tilt = rng.uniform(ROTATION_LIMIT_DEG + 8.0, 60.0)
    else:
        tilt = rng.uniform(0.0, ROTATION_LIMIT_DEG - 8.0)
    up = rotate_towards(gt.up, tilt, rng)
    return Pose(position=point, rotation=rotation_from_up_forward(up, gt.forward))


_EXPERTS: dict[str | None, object] = {}


def _experts(path: str | None):
    """The RGB-D experts, loaded once per worker process."""
    if path not in _EXPERTS:
        import torch

        from sc_mllm_ros.experts import Experts

        torch.set_num_threads(1)  # one worker per core
        _EXPERTS[path] = Experts.from_pretrained(path)
    return _EXPERTS[path]


def scene_fields(split: str, category: str, scene, sseed: int, obs, gt) -> dict:
    """The fields every record of a scene carries: where it came from, its camera and its labelled pose."""
    return {
        "split": split,
        "category": category,
        "object": scene.object_name,
        "scene_seed": sseed,
        "intrinsics": obs.intrinsics.to_dict(),
        "contact": _vec(gt.contact),
        "up": _vec(gt.up),
        "forward": _vec(gt.forward),
    }


def outcome_label(res) -> str | None:
    """The failure answer of an executed attempt; None when physics and the paper's label disagree."""
    if res.unreachable:
        return None
    if res.success:
        return "success"
    return None if res.cause == "success" else res.cause


def scene_records(
    split: str, index: int, cfg: GenConfig
) -> tuple[list[dict], dict[str, tuple[bytes, bytes]], str | None]:
    """The records of one scene and their encoded images (keyed by record id); ``None`` cause if skipped."""
    cats = categories_for(split)
    category = cats[index % len(cats)]
    wanted = CAUSES[(index // len(cats)) % len(CAUSES)]
    sseed = scene_seed(cfg.seed, split, index)
    rng = np.random.default_rng([sseed, 1])
    scene = sample_scene(sseed, split, category)
    records, images = [], {}
    with PullWorld(scene, cfg.image_size) as world:
        obs = world.reset()
        gt = world.ground_truth
        if not in_mask(gt.affordance_mask, gt.contact):
            return [], {}, None  # the best contact is hidden: no usable ground truth
        base = scene_fields(split, category, scene, sseed, obs, gt)
        stem = f"{split}-{index:06d}"
        initial = _images(obs.rgb, obs.depth)

        def add(family: str, imgs: tuple[bytes, bytes], name: str | None = None, **extra) -> None:
            rid = f"{stem}-{name or family}"
            records.append(
                {
                    "id": rid,
                    "family": family,
                    **base,
                    "rgb": f"{split}/images/{rid}_rgb.png",
                    "depth": f"{split}/images/{rid}_depth.png",
                    **extra,
                }
            )
            images[rid] = imgs

        add("pose", initial)
        initial_rgb = f"{split}/images/{stem}-pose_rgb.png"

        def add_failure(res, cause: str, name: str) -> None:
            ee = res.ee_pose
            add(
                "failure",
                _images(res.end_obs.rgb, res.end_obs.depth),
                name,
                ee_contact=_vec(project(ee.position, obs.intrinsics)),
                ee_up=_vec(ee.up),
                ee_forward=_vec(ee.forward),
                cause=cause,
                initial_rgb=initial_rgb,
            )

        from sc_mllm_ros.experts import ExpertError

        try:
            hints = _experts(cfg.experts).hints(
                obs.rgb, obs.depth, obs.intrinsics, f"pull the {scene.object_name}"
            )
        except ExpertError:
            hints = None
        fits = (
            []
            if hints is None
            else [(p, f) for p, f in zip(hints.candidate_pixels, hints.candidate_planes) if f is not None]
        )
        if fits:
            j = (
                0
                if len(fits) == 1 or rng.random() < cfg.best_candidate_share
                else int(rng.integers(1, len(fits)))
            )
            pixel, plane = fits[j]
            try:
                hint_pose = Pose(
                    lift_pixel(obs.depth, pixel, obs.intrinsics),
                    rotation_from_up_forward(plane.up, plane.forward),
                )
            except ValueError:
                hint_pose = None
            if hint_pose is not None:
                res = world.execute(hint_pose)
                good = bool(res.success)
                add(
                    "correction",
                    initial,
                    contact=_vec(pixel) if good else base["contact"],
                    hint_contact=_vec(pixel),
                    hint_up=_vec(plane.up),
                    hint_forward=_vec(plane.forward),
                    hint_candidate=j,
                    hint_succeeded=good,
                )
                label = outcome_label(res)
                if label is not None:
                    add_failure(res, label, "attempt")
        for _ in range(cfg.failure_tries):
            pose = _perturbed_pose(gt, obs.depth, obs.intrinsics, wanted, rng)
            if pose is None:
                continue
            res = world.execute(pose)
            # Keep only executions whose outcome agrees with their label (e.g. no unreachable "successes").
            if outcome_label(res) == wanted:
                add_failure(res, wanted, "failure")
                return records, images, wanted
    return records, images, None


def _job(records: Callable, args: tuple[str, int, GenConfig]):
    return records(*args)


def generate(cfg: GenConfig, records: Callable = scene_records) -> dict:
    """Write the dataset to ``cfg.out`` and return its manifest.

    ``records(split, index, cfg)`` gives one scene's records (a module-level function: workers are spawned).
    """
    if cfg.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {cfg.workers}")
    if cfg.image_size < 16:
        raise ValueError(f"--image-size must be >= 16, got {cfg.image_size}")
    counts = cfg.split_counts()
    if os.path.exists(os.path.join(cfg.out, "manifest.json")):
        raise ValueError(f"{cfg.out} already holds a dataset (manifest.json); choose another --out")
    manifest = {
        "format": FORMAT,
        "seed": cfg.seed,
        "image_size": [cfg.image_size, cfg.image_size],
        "counts": {},
        "causes": {},
        "categories": {"seen": list(SEEN_CATEGORIES), "unseen": list(UNSEEN_CATEGORIES)},
        "shards": {},
        "generator": {
            "correction_hints": "rgbd_experts",
            "experts": cfg.experts or "shipped",
            "best_candidate_share": cfg.best_candidate_share,
            "policy": cfg.policy,
            "families": list(FAMILIES),
        },
    }
    job = functools.partial(_job, records)
    ctx = multiprocessing.get_context("spawn")  # no GL state inherited from the parent
    pool = ctx.Pool(cfg.workers) if cfg.workers > 1 else None
    writers = {split: _SplitWriter(cfg, split, n) for split, n in counts.items()}
    try:
        with tqdm(total=sum(counts.values()), desc="gen-data", unit="rec") as bar:
            start = dict.fromkeys(counts, 0)
            while True:
                # Scenes give 4 records, sometimes fewer; ask for a little more than needed, top up if short.
                jobs = []
                for split, w in writers.items():
                    missing = w.n - w.written
                    if missing > 0:
                        m = int(np.ceil(missing / 4 * 1.1)) + 2
                        jobs += [(split, i, cfg) for i in range(start[split], start[split] + m)]
                        start[split] += m
                if not jobs:
                    break
                for (split, _, _), (records, images, _) in zip(
                    jobs, pool.imap(job, jobs, chunksize=2) if pool else map(job, jobs)
                ):
                    bar.update(writers[split].write(records, images))
                if any(start[s] > 3 * counts[s] + 50 for s in counts):
                    raise RuntimeError("too many scenes were skipped; is the renderer working?")
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        for w in writers.values():
            w.close()
    for split, w in writers.items():
        manifest["counts"][split] = dict(w.families)
        manifest["causes"][split] = dict(w.causes)
        manifest["shards"][split] = w.shards
    with open(os.path.join(cfg.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


class _SplitWriter:
    """Appends records of one split to its shards, in order, up to ``n``."""

    def __init__(self, cfg: GenConfig, split: str, n: int):
        self.cfg, self.split, self.n = cfg, split, n
        self.families, self.causes, self.shards = Counter(), Counter(), []
        self.written = 0
        self._shard = None
        os.makedirs(os.path.join(cfg.out, split, "images"), exist_ok=True)

    def write(self, records: list[dict], images: dict[str, tuple[bytes, bytes]]) -> int:
        done = 0
        for rec in records:
            if self.written == self.n:
                break
            if self.written % self.cfg.shard_size == 0:
                self.close()
                self.shards.append(f"{self.split}/shard-{self.written // self.cfg.shard_size:05d}.jsonl")
                self._shard = open(os.path.join(self.cfg.out, self.shards[-1]), "w")
            for rel, data in zip((rec["rgb"], rec["depth"]), images[rec["id"]]):
                with open(os.path.join(self.cfg.out, rel), "wb") as f:
                    f.write(data)
            self._shard.write(json.dumps(rec) + "\n")
            self.families[rec["family"]] += 1
            if rec["family"] == "failure":
                self.causes[rec["cause"]] += 1
            self.written += 1
            done += 1
        return done

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
