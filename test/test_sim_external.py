"""The external split: others' articulated objects load at run time, move, are solvable, never train."""

import mujoco
import pytest

from sc_mllm_ros.sim import PullWorld, sample_scene, SEEN_CATEGORIES, UNSEEN_CATEGORIES
from sc_mllm_ros.sim.dataset import GenConfig, scene_records
from sc_mllm_ros.sim.external import _compiled, EXTERNAL_CATEGORIES, metaworld_xml, robosuite_door_xml
from sc_mllm_ros.sim.objects import categories_for, SPLITS


@pytest.mark.parametrize(
    ("path", "joint", "radians"),
    [
        (robosuite_door_xml, "hinge", True),
        (lambda: metaworld_xml("drawer.xml"), "goal_slidey", False),
        (lambda: metaworld_xml("doorlockB.xml"), "doorjoint", False),
    ],
)
def test_the_authored_files_load_with_our_mujoco_and_have_a_movable_part(path, joint, radians):
    obj = _compiled(path(), joint, radians)
    lo, hi = obj.joint_range
    assert hi - lo > 0.1  # metres or radians: a real range, not one misread in degrees
    assert any(g.moves for g in obj.geoms) and any(not g.moves for g in obj.geoms)


@pytest.mark.parametrize("category", EXTERNAL_CATEGORIES)
def test_external_part_moves_only_when_pulled_and_the_ground_truth_opens_it(category):
    """The part stays put untouched, and the ground-truth pull opens it on a few scenes.

    (The baselines sweep checks >= 90 % on 200.)
    """
    succeeded = 0
    for seed in range(3):
        scene = sample_scene(seed, "test_external", category)
        assert scene.category == category and scene.split == "test_external"
        with PullWorld(scene) as world:
            q0 = world.joint_positions()[-1]
            for _ in range(200):  # 0.4 s of physics with nobody touching it
                mujoco.mj_step(world.model, world.data)
            assert abs(world.joint_positions()[-1] - q0) < 1e-3
            res = world.execute(world.ground_truth.pose)
            succeeded += res.success
            assert not res.success or res.articulation_delta > 0.03
    assert succeeded >= 2


def test_external_objects_never_appear_in_the_other_splits():
    assert set(categories_for("test_external")) == set(EXTERNAL_CATEGORIES)
    for split in SPLITS:
        if split != "test_external":
            assert not set(categories_for(split)) & set(EXTERNAL_CATEGORIES)
            for category in EXTERNAL_CATEGORIES:
                with pytest.raises(ValueError, match="not in split"):
                    sample_scene(0, split, category)
    assert not set(EXTERNAL_CATEGORIES) & (set(SEEN_CATEGORIES) | set(UNSEEN_CATEGORIES))
    drawn = {sample_scene(s, "train").category for s in range(40)}
    assert drawn and not drawn & set(EXTERNAL_CATEGORIES)
    assert {sample_scene(s, "test_external").category for s in range(30)} == set(EXTERNAL_CATEGORIES)


def test_training_records_come_from_seen_categories_only():
    cfg = GenConfig(num=10, out="unused", seed=5)
    for index in range(4):
        records, _, _ = scene_records("train", index, cfg)
        assert all(r["category"] in SEEN_CATEGORIES for r in records)
