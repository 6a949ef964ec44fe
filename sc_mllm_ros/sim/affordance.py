"""Affordance labels by execution, and the experts' training samples.

The affordance region of a scene is the set of target-part pixels where a pull with the ground-truth
direction really succeeds: a grid of contacts on the part is executed (the full pull primitive, physics
and seal included) and every part pixel takes the outcome of its nearest grid contact.  The paper's
position label is then "the contact is outside this region".

Cost: one pull is ~0.15-0.3 s on one core, so a scene with the default 24-point grid costs ~5-8 s
(plus ~0.6 s to build the world); :func:`expert_samples` therefore caches masks on disk when given a
``cache_dir`` (or ``SC_MLLM_AFFORDANCE_CACHE``), keyed by split, scene seed, image size and grid.
"""

from __future__ import annotations

from collections.abc import Iterator
import os

import numpy as np
from scipy.spatial import cKDTree

from sc_mllm_ros.geometry import deproject, Pose, rotation_from_up_forward

GRID_POINTS = 24
_SPLIT_NAMES = {"seen": "test_seen", "unseen": "test_unseen"}


def grid_contacts(part_mask: np.ndarray, points: int = GRID_POINTS) -> np.ndarray:
    """About ``points`` (row, col) pixels spread evenly over a mask (a square lattice clipped to it)."""
    rows, cols = np.nonzero(part_mask)
    if rows.size == 0:
        return np.zeros((0, 2), int)
    stride = max(1, int(np.sqrt(rows.size / points)))
    keep = ((rows - rows.min()) % stride == stride // 2) & ((cols - cols.min()) % stride == stride // 2)
    if not keep.any():
        keep[rows.size // 2] = True
    return np.column_stack([rows[keep], cols[keep]])


def affordance_mask(world, points: int = GRID_POINTS) -> np.ndarray:
    """Part pixels where a pull along the ground-truth direction succeeds (executed on a grid)."""
    gt = world.ground_truth
    mask = gt.part_mask
    grid = grid_contacts(mask, points)
    if len(grid) == 0:
        return np.zeros_like(mask)
    rot = rotation_from_up_forward(gt.up, gt.forward)
    ok = np.zeros(len(grid), bool)
    for i, (r, c) in enumerate(grid):
        point = deproject((r, c), float(world.clean_depth[r, c]), world.intrinsics)
        ok[i] = world.execute(Pose(point, rot), render_end=False).success
    world.reset()
    rows, cols = np.nonzero(mask)
    _, nearest = cKDTree(grid).query(np.column_stack([rows, cols]))
    out = np.zeros_like(mask)
    out[rows, cols] = ok[nearest]
    return out


def _cached_world(scene, image_size: int, points: int, cache_dir: str | None):
    from sc_mllm_ros.sim.world import PullWorld

    path = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, f"{scene.split}-{scene.seed}-{image_size}-{points}.npz")
    world = PullWorld(scene, image_size=image_size)
    if path and os.path.exists(path):
        aff = np.load(path)["affordance"]
    else:
        aff = affordance_mask(world, points)
        if path:
            np.savez_compressed(path, affordance=aff)
    from dataclasses import replace

    world.ground_truth = replace(world.ground_truth, affordance_mask=aff)
    return world


def expert_samples(
    split: str,
    n: int,
    seed: int,
    *,
    image_size: int = 224,
    points: int = GRID_POINTS,
    cache_dir: str | None = None,
) -> Iterator[dict]:
    """``n`` scenes of ``split`` ("train", "test_seen"/"seen", "test_unseen"/"unseen") for the experts.

    Each dict: ``rgb`` (H,W,3 uint8, noisy), ``depth`` (H,W float32 m, noisy, NaN = dropout),
    ``intrinsics`` (fx, fy, cx, cy), ``task`` ("pull the top drawer"), ``part_name``, ``affordance``
    (H,W bool, executed), ``part_mask`` (H,W bool), ``normal_cam`` (3,) the part's outward normal in the
    camera optical frame.  Deterministic by ``seed``.  Cost: ~5-8 s per sample on one core without a
    cache (see the module docstring), ~0.7 s with one.
    """
    from sc_mllm_ros.sim.dataset import scene_seed
    from sc_mllm_ros.sim.objects import sample_scene, SPLITS

    split = _SPLIT_NAMES.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (or seen/unseen), got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cache_dir = cache_dir or os.environ.get("SC_MLLM_AFFORDANCE_CACHE") or None
    for i in range(n):
        scene = sample_scene(scene_seed(seed, split, i), split)
        world = _cached_world(scene, image_size, points, cache_dir)
        try:
            obs, gt = world.reset(), world.ground_truth
            intr = obs.intrinsics
            yield {
                "rgb": obs.rgb,
                "depth": obs.depth,
                "intrinsics": (intr.fx, intr.fy, intr.cx, intr.cy),
                "task": f"pull the {world.object_name}",
                "part_name": world.object_name,
                "affordance": gt.affordance_mask.copy(),
                "part_mask": gt.part_mask.copy(),
                "normal_cam": np.asarray(gt.plane_normal, float).copy(),
            }
        finally:
            world.close()
