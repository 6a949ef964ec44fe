"""What the baselines measure about the experts: rotation error, hints inside the affordance, latency."""

from __future__ import annotations

from collections.abc import Iterable
import time

import numpy as np

from sc_mllm_ros.experts.rotation import ExpertError
from sc_mllm_ros.geometry import angle_between_deg, in_mask, ROTATION_LIMIT_DEG


def rotation_error_deg(up: np.ndarray, outward_normal: np.ndarray) -> float:
    """Angle between an approach axis and the movable plane's inward normal (the paper's > 30 deg test)."""
    return angle_between_deg(up, -np.asarray(outward_normal, dtype=float))


def latency_ms(call, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median and 90th-percentile wall time of ``call()`` in milliseconds."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(1e3 * (time.perf_counter() - t))
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def evaluate_experts(experts, samples: Iterable[dict]) -> dict[str, float]:
    """Hit rates of the position hint, rotation error at the hint and latency over labelled samples.

    Each sample is a dict with ``rgb``, ``depth``, ``intrinsics``, ``task``, ``affordance`` (bool mask) and
    ``normal_cam`` (outward normal): the contract of ``sim.affordance.expert_samples``.  A refused hint
    (:class:`ExpertError`) counts as a miss for both experts.
    """
    hit1, hitk, rot_ok, refused, errors, times = [], [], [], 0, [], []
    for s in samples:
        t = time.perf_counter()
        try:
            h = experts.hints(s["rgb"], s["depth"], s["intrinsics"], s["task"])
        except ExpertError:
            refused += 1
            hit1.append(False)
            hitk.append(False)
            rot_ok.append(False)
            continue
        times.append(1e3 * (time.perf_counter() - t))
        hit1.append(in_mask(s["affordance"], h.pixel))
        hitk.append(any(in_mask(s["affordance"], p) for p in h.candidate_pixels))
        err = rotation_error_deg(h.up, s["normal_cam"])
        errors.append(err)
        rot_ok.append(err <= ROTATION_LIMIT_DEG)
    if not hit1:
        raise ValueError("no samples to evaluate")
    return {
        "samples": len(hit1),
        "position_hit": float(np.mean(hit1)),
        "position_hit_any_candidate": float(np.mean(hitk)),
        "rotation_error_deg_median": float(np.median(errors)) if errors else float("nan"),
        "rotation_within_limit": float(np.mean(rot_ok)),
        "refused": refused,
        "latency_ms_median": float(np.median(times)) if times else float("nan"),
    }
