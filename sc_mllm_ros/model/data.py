"""Training samples, their token encoding, and the reader of the on-disk dataset (``sc-mllm gen-data``).

Dataset layout (the simulator/model contract): ``DIR/manifest.json`` with ``format`` ``sc_mllm_dataset/1`` and
``shards`` per split; JSONL records whose ``rgb``/``depth`` paths are relative to ``DIR``; pixels are (row,
col)
of the record's image, directions unit vectors in the camera optical frame.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sc_mllm_ros.model.codec import encode_pose_values, pixel_to_answer
from sc_mllm_ros.model.config import SCMLLMConfig
from sc_mllm_ros.model.prompts import answer_segments, CAUSES, FAMILIES, prompt_segments
from sc_mllm_ros.model.tokenizer import SCTokenizer
from sc_mllm_ros.model.vision import preprocess

DATASET_FORMAT = "sc_mllm_dataset/1"


@dataclass
class TrainingSample:
    """One (image, prompt, answer) example; pixels are (row, col) of ``rgb``, directions in the camera frame.

    ``contact``/``up``/``forward`` are the ground-truth pose (the answer of "pose" and "correction");
    "failure"
    needs ``ee_*`` (the executed end-effector parameters, in the end-state image ``rgb``) and ``cause``;
    "correction" needs the ``hint_*`` expert hints.
    """

    family: str
    rgb: np.ndarray
    object_name: str
    contact: tuple[float, float] | None
    up: np.ndarray | None
    forward: np.ndarray | None
    hint_contact: tuple[float, float] | None = None
    hint_up: np.ndarray | None = None
    hint_forward: np.ndarray | None = None
    ee_contact: tuple[float, float] | None = None
    ee_up: np.ndarray | None = None
    ee_forward: np.ndarray | None = None
    cause: str | None = None
    initial_rgb: np.ndarray | None = None  # "failure": the image the attempt was predicted from


@dataclass
class Encoded:
    """A sample ready for the network: resized image, prompt ids, answer ids (+EOS) and stage-1 targets."""

    family: str
    image: torch.Tensor  # uint8 (3, S, S)
    prompt_ids: list[int]
    answer_ids: list[int]
    answer_slots: list[str]  # per answer token: the number slot it encodes, or ""
    target: np.ndarray | None  # (8,) contact/size (2) + up (3) + forward (3) for stage 1, pose images only
    values: dict[str, object]  # the answer's slot values (ground truth for evaluation)
    initial: torch.Tensor | None = None  # uint8 (3, S, S): the before image of a before/after checker


def prompt_values(
    family: str, object_name: str, image_hw: tuple[int, int], size: int, contact=None, up=None, forward=None
) -> dict[str, object]:
    """Slot values of a prompt; ``contact``/``up``/``forward``: hint (correction) or executed EE (failure)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown prompt family {family!r}; expected one of {FAMILIES}")
    if not object_name or not isinstance(object_name, str):
        raise ValueError("object_name must be a non-empty string")
    values: dict[str, object] = {"object": object_name}
    if family != "pose":
        if contact is None or up is None or forward is None:
            raise ValueError(f"a {family!r} prompt needs a contact point, an up and a forward direction")
        values.update(encode_pose_values(contact, up, forward, image_hw, size))
    return values


def encode_sample(s: TrainingSample, tok: SCTokenizer, cfg: SCMLLMConfig) -> Encoded:
    size = cfg.answer_size
    hw = np.asarray(s.rgb).shape[:2]
    if s.family == "failure":
        pv = prompt_values("failure", s.object_name, hw, size, s.ee_contact, s.ee_up, s.ee_forward)
        if s.cause not in CAUSES:
            raise ValueError(f"a failure sample needs cause in {CAUSES}, got {s.cause!r}")
        av: dict[str, object] = {"cause": s.cause}
    else:
        if s.family == "correction":
            pv = prompt_values(
                "correction", s.object_name, hw, size, s.hint_contact, s.hint_up, s.hint_forward
            )
        else:
            pv = prompt_values(s.family, s.object_name, hw, size)
        if s.contact is None or s.up is None or s.forward is None:
            raise ValueError(f"a {s.family!r} sample needs the ground-truth contact, up and forward")
        av = encode_pose_values(s.contact, s.up, s.forward, hw, size)
    prompt_ids, _ = tok.encode_segments(prompt_segments(s.family, size), pv)
    answer_ids, slots = tok.encode_segments(answer_segments(s.family, size), av)
    initial = None
    if s.family == "failure" and cfg.checker_sees_initial:
        if s.initial_rgb is None:
            raise ValueError("a before/after checker's failure sample needs the initial image")
        initial = preprocess(s.initial_rgb, cfg.vision)
    target = None
    if s.family != "failure":
        a = pixel_to_answer(s.contact, hw, size)
        up = np.asarray(s.up, float) / np.linalg.norm(s.up)
        fwd = np.asarray(s.forward, float) / np.linalg.norm(s.forward)
        target = np.concatenate([(np.asarray(a) + 0.5) / size, up, fwd]).astype(np.float32)
    return Encoded(
        s.family,
        preprocess(s.rgb, cfg.vision),
        prompt_ids,
        answer_ids + [tok.eos_id],
        slots + [""],
        target,
        av,
        initial,
    )


# -- the on-disk dataset -----------------------------------------------------------------------------------
def read_manifest(root: str | Path) -> dict:
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise ValueError(f"{root} is not a dataset: no manifest.json (write one with `sc-mllm gen-data`)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != DATASET_FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {DATASET_FORMAT!r}")
    return manifest


def read_records(root: str | Path, split: str = "train") -> list[dict]:
    root = Path(root)
    manifest = read_manifest(root)
    if split not in manifest.get("shards", {}):
        raise ValueError(f"{root}: no split {split!r}; have {sorted(manifest.get('shards', {}))}")
    records = []
    for shard in manifest["shards"][split]:
        with open(root / shard) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


def load_rgb(root: str | Path, rel: str) -> np.ndarray:
    import cv2

    path = Path(root) / rel
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def record_to_sample(rec: dict, rgb: np.ndarray, initial_rgb: np.ndarray | None = None) -> TrainingSample:
    def vec(key: str) -> np.ndarray | None:
        return None if rec.get(key) is None else np.asarray(rec[key], dtype=float)

    def px(key: str) -> tuple[float, float] | None:
        return None if rec.get(key) is None else (float(rec[key][0]), float(rec[key][1]))

    return TrainingSample(
        family=rec["family"],
        rgb=rgb,
        object_name=rec["object"],
        contact=px("contact"),
        up=vec("up"),
        forward=vec("forward"),
        hint_contact=px("hint_contact"),
        hint_up=vec("hint_up"),
        hint_forward=vec("hint_forward"),
        ee_contact=px("ee_contact"),
        ee_up=vec("ee_up"),
        ee_forward=vec("ee_forward"),
        cause=rec.get("cause"),
        initial_rgb=initial_rgb,
    )


def load_encoded(
    root: str | Path, split: str, tok: SCTokenizer, cfg: SCMLLMConfig, limit: int | None = None
) -> list[Encoded]:
    """Read and encode a split (images resized once, kept in memory as uint8); bad records are skipped."""
    records = read_records(root, split)[:limit]
    out, skipped = [], 0
    for rec in tqdm(records, desc=f"reading {split}", unit="rec", leave=False):
        try:
            # The before image only where the checker compares before and after (memory: one more image).
            initial = None
            if rec["family"] == "failure" and cfg.checker_sees_initial:
                initial = load_rgb(root, rec["initial_rgb"])
            out.append(encode_sample(record_to_sample(rec, load_rgb(root, rec["rgb"]), initial), tok, cfg))
        except (ValueError, KeyError) as e:
            skipped += 1
            if skipped <= 3:
                print(f"skipping record {rec.get('id')}: {e}")
    if skipped:
        print(f"skipped {skipped} of {len(records)} records of {split}")
    return out
