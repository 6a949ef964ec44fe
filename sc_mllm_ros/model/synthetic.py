"""Tiny synthetic scenes for tests and benchmarks (the real data comes from ``sc-mllm gen-data``).

A coloured panel with a dark handle on a random background: the contact point is the handle centre, ``up``
leans
with the panel's place in the image and ``forward`` follows the handle's orientation, so every label is
visible.
Also writes such samples as an on-disk dataset in the simulator's format, for testing the reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sc_mllm_ros.geometry import angle_between_deg, CameraIntrinsics
from sc_mllm_ros.model.data import DATASET_FORMAT, TrainingSample
from sc_mllm_ros.model.prompts import CAUSES

OBJECTS = ("drawer", "cabinet door", "microwave door")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def scene(rng: np.random.Generator, hw: tuple[int, int] = (96, 128)):
    """(rgb, contact, up, forward) of one random synthetic scene."""
    h, w = hw
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    top, left = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
    bottom, right = top + int(rng.integers(h // 3, h // 2)), left + int(rng.integers(w // 3, w // 2))
    rgb[top:bottom, left:right] = rng.integers(60, 256, 3, dtype=np.uint8)
    row, col = int(rng.integers(top + 3, bottom - 3)), int(rng.integers(left + 3, right - 3))
    vertical = bool(rng.integers(0, 2))
    dr, dc = (4, 1) if vertical else (1, 4)
    rgb[row - dr: row + dr + 1, col - dc: col + dc + 1] = (10, 10, 10)
    up = _unit(np.array([(col - w / 2) / w, (row - h / 2) / h, 1.0]))
    axis = np.array([0.0, 1.0, 0.0]) if vertical else np.array([1.0, 0.0, 0.0])
    forward = _unit(axis - np.dot(axis, up) * up)
    return rgb, (float(row), float(col)), up, forward


def samples(n: int, seed: int = 0, hw: tuple[int, int] = (96, 128)) -> list[TrainingSample]:
    """``n`` samples cycling through the three families."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rgb, contact, up, forward = scene(rng, hw)
        obj = OBJECTS[i % len(OBJECTS)]
        family = ("pose", "failure", "correction")[i % 3]
        s = TrainingSample(family, rgb, obj, contact, up, forward)
        if family != "pose":
            off = rng.normal(0, 12, 2) * rng.integers(0, 2)
            tilt = rng.normal(0, 0.6, 3) * rng.integers(0, 2)
            p = (float(np.clip(contact[0] + off[0], 0, hw[0] - 1)),
                 float(np.clip(contact[1] + off[1], 0, hw[1] - 1)))
            u = _unit(up + tilt)
            f = _unit(np.cross(u, np.cross(forward, u)))
            if family == "failure":
                pos_bad = np.hypot(*off) > 10
                rot_bad = angle_between_deg(u, up) > 30
                cause = CAUSES[int(pos_bad) + 2 * int(rot_bad)]
                s.ee_contact, s.ee_up, s.ee_forward, s.cause = p, u, f, cause
            else:
                s.hint_contact, s.hint_up, s.hint_forward = p, u, f
        out.append(s)
    return out


def write_dataset(root: str | Path, n: int, seed: int = 0, hw: tuple[int, int] = (96, 128)) -> Path:
    """Write ``n`` synthetic samples per split in the ``sc_mllm_dataset/1`` layout."""
    import cv2

    root = Path(root)
    intr = CameraIntrinsics.from_fov(45.0, hw[1], hw[0])
    shards, counts = {}, {}
    for k, split in enumerate(("train", "test_seen", "test_unseen")):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        lines, count = [], {}
        for i, s in enumerate(samples(n, seed + 1000 * k, hw)):
            rid = f"{split}-{i:05d}"
            rgb_rel, depth_rel = f"{split}/images/{rid}_rgb.png", f"{split}/images/{rid}_depth.png"
            cv2.imwrite(str(root / rgb_rel), cv2.cvtColor(s.rgb, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / depth_rel), np.full(hw, 800, np.uint16))
            rec = {"id": rid, "family": s.family, "split": split, "category": s.object_name.replace(" ", "_"),
                   "object": s.object_name, "scene_seed": seed + i, "rgb": rgb_rel, "depth": depth_rel,
                   "intrinsics": intr.to_dict(), "contact": list(s.contact), "up": s.up.tolist(),
                   "forward": s.forward.tolist()}
            for key in ("hint_contact", "hint_up", "hint_forward", "ee_contact", "ee_up", "ee_forward"):
                v = getattr(s, key)
                if v is not None:
                    rec[key] = [float(x) for x in v]
            if s.cause is not None:
                rec["cause"] = s.cause
            lines.append(json.dumps(rec))
            count[s.family] = count.get(s.family, 0) + 1
        (root / split / "shard-00000.jsonl").write_text("\n".join(lines) + "\n")
        shards[split], counts[split] = [f"{split}/shard-00000.jsonl"], count
    manifest = {"format": DATASET_FORMAT, "seed": seed, "image_size": list(hw), "counts": counts,
                "categories": {"seen": list(OBJECTS), "unseen": []}, "shards": shards}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root
