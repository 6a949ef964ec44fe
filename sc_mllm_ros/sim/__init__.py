"""The embedded world: a headless MuJoCo Panda pulling procedural articulated objects (no ROS, no model).

Public API::

    scene = sample_scene(seed, split="train", category=None)   # splits: train, test_seen, test_unseen,
    world = PullWorld(scene, image_size=224)                   # test_external (robosuite, Meta-World)
    obs = world.reset(); gt = world.ground_truth               # obs: noisy RGB-D; gt from the clean render
    result = world.execute(gt.pose)            # camera optical frame; success, opened, unreachable
    expert_samples(split, n, seed)             # sc_mllm_ros.sim.affordance: executed affordance labels
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
