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
    ROTATION_LIMIT_DEG,
    GroundTruth,
    PositionExpert,
    RotationExpert,
    failure_cause,
)
from sc_mllm_ros.sim.objects import (
    OBJECT_NAMES,
    SEEN_CATEGORIES,
    SPLITS,
    UNSEEN_CATEGORIES,
    SceneSpec,
    categories_for,
    sample_scene,
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
