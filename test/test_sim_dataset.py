"""sc-mllm gen-data: the on-disk format, determinism by seed, every family and cause."""

import json
import os

import cv2
import numpy as np
import pytest

from sc_mllm_ros.sim import CAUSES, SEEN_CATEGORIES, UNSEEN_CATEGORIES
from sc_mllm_ros.sim.dataset import FORMAT, GenConfig, generate


def _read(out):
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    records = {}
    for split, shards in manifest["shards"].items():
        records[split] = [json.loads(line) for s in shards for line in open(os.path.join(out, s))]
    return manifest, records


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ds") / "a")
    generate(GenConfig(num=72, out=out, seed=7, workers=2, test_num=6, shard_size=40, image_size=64))
    return out


def test_manifest_and_records_follow_the_contract(dataset):
    manifest, records = _read(dataset)
    assert manifest["format"] == FORMAT and manifest["seed"] == 7 and manifest["image_size"] == [64, 64]
    assert manifest["categories"] == {"seen": list(SEEN_CATEGORIES), "unseen": list(UNSEEN_CATEGORIES)}
    assert len(records["train"]) == 72 and len(manifest["shards"]["train"]) == 2
    assert {r["family"] for r in records["train"]} == {"pose", "failure", "correction"}
    assert {r["cause"] for r in records["train"] if r["family"] == "failure"} == set(CAUSES)
    assert {r["category"] for r in records["train"]} == set(SEEN_CATEGORIES)
    assert {r["category"] for r in records["test_unseen"]} <= set(UNSEEN_CATEGORIES)
    for split, recs in records.items():
        assert sum(manifest["counts"][split].values()) == len(recs)
        for r in recs:
            assert r["split"] == split
            for key in ("id", "object", "scene_seed", "intrinsics", "contact", "up", "forward"):
                assert key in r
            rgb = cv2.imread(os.path.join(dataset, r["rgb"]), cv2.IMREAD_UNCHANGED)
            depth = cv2.imread(os.path.join(dataset, r["depth"]), cv2.IMREAD_UNCHANGED)
            assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
            assert depth.shape == (64, 64) and depth.dtype == np.uint16
            row, col = int(round(r["contact"][0])), int(round(r["contact"][1]))
            window = depth[max(0, row - 2) : row + 3, max(0, col - 2) : col + 3]
            assert ((window > 200) & (window < 5000)).any()  # millimetres near the contact; 0 = dropout
            assert abs(np.linalg.norm(r["up"]) - 1) < 1e-4
            if r["family"] == "failure":
                assert r["cause"] in CAUSES and len(r["ee_contact"]) == 2
            if r["family"] == "failure":
                # the before image of the same scene, for a checker that compares before and after
                assert r["initial_rgb"] == f"{split}/images/{r['id'].rsplit('-', 1)[0]}-pose_rgb.png"
                assert os.path.exists(os.path.join(dataset, r["initial_rgb"]))
            if r["family"] == "correction":
                assert len(r["hint_contact"]) == 2 and len(r["hint_up"]) == 3
                # the answer follows a hint whose executed pull succeeded, else it is the ground truth
                truth = next(p for p in recs if p["family"] == "pose" and p["scene_seed"] == r["scene_seed"])
                assert r["contact"] == (r["hint_contact"] if r["hint_succeeded"] else truth["contact"])


def test_corrections_and_attempts_come_from_the_rgbd_experts(dataset):
    """The hints are the experts' candidates on the noisy frame: not the ground truth plus noise."""
    manifest, records = _read(dataset)
    assert manifest["generator"]["correction_hints"] == "rgbd_experts"
    corr = [r for r in records["train"] if r["family"] == "correction"]
    assert corr and any(r["hint_candidate"] > 0 for r in corr) and any(r["hint_candidate"] == 0 for r in corr)
    # An expert that sees only RGB-D misses sometimes: some hints fail, and those failures are labelled.
    assert {r["hint_succeeded"] for r in corr} == {True, False}
    attempts = [r for r in records["train"] if r["id"].endswith("-attempt")]
    assert attempts and all(r["family"] == "failure" for r in attempts)


def test_generation_is_deterministic_by_seed(dataset, tmp_path):
    out = str(tmp_path / "b")
    generate(GenConfig(num=72, out=out, seed=7, workers=1, test_num=6, shard_size=40, image_size=64))
    assert _read(out) == _read(dataset)
    images = (
        "train/images/train-000005-failure_rgb.png",
        "test_unseen/images/test_unseen-000001-pose_depth.png",
    )
    for rel in images:
        with open(os.path.join(out, rel), "rb") as a, open(os.path.join(dataset, rel), "rb") as b:
            assert a.read() == b.read()
    with pytest.raises(ValueError, match="already holds"):
        generate(GenConfig(num=3, out=out))


def test_policy_rollouts_record_the_models_own_attempts(tmp_path):
    """gen-data --policy: the shipped model's attempts, labelled by the simulator, with the RGB-D experts."""
    from sc_mllm_ros.episode.rollouts import policy_records

    out = str(tmp_path / "p")
    cfg = GenConfig(num=16, out=out, seed=3, workers=1, test_num=0, image_size=224, policy="")
    generate(cfg, policy_records)
    manifest, records = _read(out)
    recs = records["train"]
    attempts = [r for r in recs if r["family"] == "failure"]
    assert attempts and {r["family"] for r in recs} >= {"pose", "failure"}
    for r in attempts:
        assert r["cause"] in CAUSES and r["id"].rsplit("-", 1)[1].startswith("attempt")
        assert os.path.exists(os.path.join(out, r["initial_rgb"]))
    for r in recs:
        if r["family"] == "correction":
            truth = next(p for p in recs if p["family"] == "pose" and p["scene_seed"] == r["scene_seed"])
            if not r["hint_succeeded"]:
                assert r["contact"] == truth["contact"]
