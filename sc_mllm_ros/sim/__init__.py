"""The embedded world: a headless MuJoCo Panda pulling procedural articulated objects (no ROS, no model).

Public API::

    scene = sample_scene(seed, split="train", category=None)
    world = PullWorld(scene, image_size=112)
    obs = world.reset(); gt = world.ground_truth
    result = world.execute(gt.pose)            # poses in the camera optical frame
    failure_cause(gt, contact, up); PositionExpert().hint(gt, rng); RotationExpert().hint(gt, rng)
"""

from sc_mllm_ros.sim.labels import (
    CAUSES,
    failure_cause,
    GroundTruth,
    PositionExpert,
    ROTATION_LIMIT_DEG,
    RotationExpert,
)
from sc_mllm_ros.sim.objects import (
    categories_for,
    OBJECT_NAMES,
    sample_scene,
    SceneSpec,
    SEEN_CATEGORIES,
    SPLITS,
    UNSEEN_CATEGORIES,
)
from sc_mllm_ros.sim.world import ExecutionResult, Observation, PullConfig, PullWorld

__all__ = [
    "CAUSES",
    "OBJECT_NAMES",
    "ROTATION_LIMIT_DEG",
    "SEEN_CATEGORIES",
    "SPLITS",
    "UNSEEN_CATEGORIES",
    "ExecutionResult",
    "GroundTruth",
    "Observation",
    "PositionExpert",
    "PullConfig",
    "PullWorld",
    "RotationExpert",
    "SceneSpec",
    "categories_for",
    "failure_cause",
    "sample_scene",
]
