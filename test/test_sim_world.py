"""The embedded MuJoCo world: determinism, headless rendering, projection, solvability, failure labels."""

import cv2
import numpy as np
import pytest

from sc_mllm_ros.geometry import (
    angle_between_deg,
    deproject,
    lift_pixel,
    Pose,
    project,
    rotation_from_up_forward,
)
from sc_mllm_ros.sim import (
    failure_cause,
    PositionExpert,
    PullWorld,
    RotationExpert,
    sample_scene,
    SEEN_CATEGORIES,
    UNSEEN_CATEGORIES,
)
from sc_mllm_ros.sim.external import EXTERNAL_CATEGORIES
from sc_mllm_ros.sim.labels import rotate_towards

ALL = [(c, "train") for c in SEEN_CATEGORIES] + [(c, "test_unseen") for c in UNSEEN_CATEGORIES]
EXTERNAL = [(c, "test_external") for c in EXTERNAL_CATEGORIES]


@pytest.fixture(scope="module")
def drawer_world():
    with PullWorld(sample_scene(11, "train", "chest")) as world:
        yield world


def _success_count(category: str, split: str, seeds) -> int:
    n = 0
    for seed in seeds:
        with PullWorld(sample_scene(seed, split, category)) as world:
            n += world.execute(world.ground_truth.pose).success
    return n


def test_scene_generation_is_deterministic_by_seed():
    assert sample_scene(5, "train") == sample_scene(5, "train")
    assert sample_scene(5, "train") != sample_scene(6, "train")
    # held-out instances: the same seed gives another instance in test_seen
    assert sample_scene(5, "train", "chest") != sample_scene(5, "test_seen", "chest")
    assert {sample_scene(s, "test_unseen").category for s in range(30)} <= set(UNSEEN_CATEGORIES)
    assert {sample_scene(s, "train").category for s in range(60)} == set(SEEN_CATEGORIES)
    with pytest.raises(ValueError, match="not in split"):
        sample_scene(0, "train", "fridge")
    with pytest.raises(ValueError, match="split must be"):
        sample_scene(0, "validation")


def test_headless_render_is_deterministic(drawer_world):
    obs = drawer_world.reset()
    assert obs.rgb.shape == (224, 224, 3) and obs.rgb.dtype == np.uint8
    assert obs.depth.shape == (224, 224) and obs.depth.dtype == np.float32
    assert obs.rgb.std() > 10  # an actual picture, not a blank frame
    lost = np.isnan(obs.depth).mean()
    assert 0.01 < lost < 0.3  # RealSense-like dropout, not a blank depth image
    with PullWorld(sample_scene(11, "train", "chest")) as again:
        np.testing.assert_array_equal(again.reset().rgb, obs.rgb)  # the noise is drawn from the seed
        np.testing.assert_array_equal(again.reset().depth, obs.depth)
        mask = drawer_world.ground_truth.affordance_mask
        np.testing.assert_array_equal(again.ground_truth.affordance_mask, mask)


def test_worlds_of_one_thread_share_its_gl_context_but_render_their_own_scenes(drawer_world):
    seg = drawer_world.render_segmentation()
    with PullWorld(sample_scene(3, "train", "cabinet")) as other:
        assert other.renderer._gl_context is drawer_world.renderer._gl_context
        other_seg = other.render_segmentation()
        np.testing.assert_array_equal(drawer_world.render_segmentation(), seg)  # interleaved renders
        np.testing.assert_array_equal(other.render_segmentation(), other_seg)
        assert not np.array_equal(seg, other_seg)
    np.testing.assert_array_equal(drawer_world.render_segmentation(), seg)  # closing one frees its own only


def test_projection_round_trip_matches_the_renderer(drawer_world):
    obs, gt = drawer_world.reset(), drawer_world.ground_truth
    clean = drawer_world.clean_depth
    # Pixel + rendered depth -> 3D -> pixel, over the movable part.
    rows, cols = np.nonzero(gt.affordance_mask)
    for r, c in zip(rows[::97], cols[::97]):
        p = deproject((r, c), float(clean[r, c]), obs.intrinsics)
        np.testing.assert_allclose(project(p, obs.intrinsics), (r, c), atol=1e-6)
    # The simulator's own 3D contact lands where the renderer drew it, at the rendered depth, and the
    # robust lift from the NOISY depth finds it within a centimetre.
    r, c = (int(round(x)) for x in gt.contact)
    lifted = deproject(gt.contact, float(clean[r, c]), obs.intrinsics)
    assert np.linalg.norm(lifted - gt.contact_point) < 0.01
    assert np.linalg.norm(lift_pixel(obs.depth, gt.contact, obs.intrinsics) - gt.contact_point) < 0.01
    # camera_pose really is world_from_optical: the contact's world position matches the part's.
    world_point = obs.camera_pose[:3, :3] @ gt.contact_point + obs.camera_pose[:3, 3]
    part = drawer_world._part_point_world(np.asarray(drawer_world.scene.contact))
    np.testing.assert_allclose(world_point, part, atol=1e-9)


def test_ground_truth_is_consistent(drawer_world):
    gt = drawer_world.ground_truth
    assert gt.affordance_mask.mean() >= 0.004  # the part shows (scenes with < 0.5 % are redrawn)
    assert failure_cause(gt, gt.contact, gt.up) == "success"
    assert angle_between_deg(gt.up, -gt.plane_normal) < 1e-6
    assert abs(np.dot(gt.up, gt.forward)) < 1e-9
    assert gt.plane_normal[2] < 0  # the movable plane faces the camera


@pytest.mark.parametrize(("category", "split"), ALL)
def test_ground_truth_pose_succeeds(category, split):
    # Fast proxy of the >= 90 % gate (the slow sweep below checks it on 40 scenes per category).
    assert _success_count(category, split, range(100, 103)) >= 2


@pytest.mark.slow
@pytest.mark.parametrize(("category", "split"), ALL + EXTERNAL)
def test_ground_truth_pose_succeeds_on_90_percent(category, split):
    assert _success_count(category, split, range(1000, 1040)) >= 36


def _off_part_pixel(world) -> tuple[int, int]:
    """A floor pixel near the movable part, >= 8 px off it: the cup cannot meet the part on its way there.

    (Pixels on the carcass can be wrong picks: the cup, travelling along the door's normal, may meet the
    door in front of them first, which then rightly counts as a contact on the part.)
    """
    seg = world.render_segmentation()
    body = world.model.geom_bodyid[np.maximum(seg, 0)]
    away = cv2.distanceTransform((~world.ground_truth.affordance_mask).astype(np.uint8), cv2.DIST_L2, 5) >= 8
    floor = (seg >= 0) & (body == 0) & away
    rows, cols = np.nonzero(floor)
    r0, c0 = world.ground_truth.contact
    i = int(np.argmin((rows - r0) ** 2 + (cols - c0) ** 2))
    return int(rows[i]), int(cols[i])


def _pose(world, pixel, up) -> Pose:
    obs = world.reset()
    point = deproject(pixel, float(world.clean_depth[int(pixel[0]), int(pixel[1])]), obs.intrinsics)
    return Pose(point, rotation_from_up_forward(up, world.ground_truth.forward))


@pytest.mark.parametrize("category", ["cabinet", "chest", "storage_box"])
def test_wrong_contacts_and_rotations_get_the_right_cause(category):
    rng = np.random.default_rng(0)
    with PullWorld(sample_scene(3, "train", category)) as world:
        gt = world.ground_truth
        off = _off_part_pixel(world)
        tilted = rotate_towards(gt.up, 50.0, rng)
        cases = {
            "success": (gt.contact, gt.up),
            "position": (off, gt.up),
            "rotation": (gt.contact, tilted),
            "position and rotation": (off, tilted),
        }
        for cause, (pixel, up) in cases.items():
            assert failure_cause(gt, pixel, up) == cause
            res = world.execute(_pose(world, pixel, up))
            assert res.cause == cause, res.message
            assert res.success == (cause == "success"), res.message
        # a 20 deg tilt is within the paper's 30 deg label; the cup still seals (weaker) where the arm reaches
        res = world.execute(_pose(world, gt.contact, rotate_towards(gt.up, 20.0, rng)))
        assert res.cause == "success"
        assert res.attached or res.unreachable, res.message


def test_execute_is_repeatable_and_reset_restores(drawer_world):
    q0 = drawer_world.reset() and drawer_world.joint_positions()
    first = drawer_world.execute(drawer_world.ground_truth.pose)
    assert first.success and first.articulation_delta > 0.03
    assert not np.allclose(drawer_world.joint_positions(), q0)
    drawer_world.reset()
    np.testing.assert_array_equal(drawer_world.joint_positions(), q0)
    second = drawer_world.execute(drawer_world.ground_truth.pose)
    assert second.articulation_delta == pytest.approx(first.articulation_delta)
    assert len(drawer_world.joint_names) == len(q0) == 8
    phases = []
    drawer_world.execute(drawer_world.ground_truth.pose, on_phase=lambda name, p: phases.append(name))
    assert phases[0] == "pre_pose" and phases[-1] == "done" and "pull" in phases


def test_unreachable_pose_fails_cleanly(drawer_world):
    gt = drawer_world.ground_truth
    far = Pose(gt.contact_point + np.array([0.0, 0.0, 3.0]), gt.pose.rotation)
    res = drawer_world.execute(far)
    assert res.unreachable and not res.success and not res.attached
    assert "inverse kinematics" in res.message
    assert not drawer_world.execute(gt.pose).unreachable


def test_experts_give_usable_hints(drawer_world):
    gt = drawer_world.ground_truth
    rng = np.random.default_rng(1)
    for _ in range(20):
        contact = PositionExpert(noise_px=4.0).hint(gt, rng)
        up, forward = RotationExpert(noise_deg=10.0).hint(gt, rng)
        assert failure_cause(gt, contact, up) == "success"
        assert abs(np.dot(up, forward)) < 1e-9
    assert PositionExpert(noise_px=0.0).hint(gt, rng) == pytest.approx(gt.contact)
    np.testing.assert_allclose(RotationExpert(noise_deg=0.0).hint(gt, rng)[0], gt.up, atol=1e-12)
    with pytest.raises(ValueError):
        PositionExpert(noise_px=-1.0).hint(gt, rng)
