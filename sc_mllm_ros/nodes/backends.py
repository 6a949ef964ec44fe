"""The executor's arms behind one interface: the embedded MuJoCo Panda, or MoveIt through moveit_py.

Both take a goal in the camera optical frame, run the pull primitive and return an :class:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import threading

import numpy as np

from sc_mllm_ros.geometry import CameraIntrinsics, Pose, rotation_from_quaternion

PhaseCallback = Callable[[str, float], None]


class ExecutionStopped(RuntimeError):
    """The pause/e-stop service stopped the primitive."""


@dataclass(frozen=True)
class Outcome:
    completed: bool
    message: str
    ee_pose: Pose  # camera optical frame
    end_rgb: np.ndarray | None  # None: the caller takes the latest camera frame
    intrinsics: CameraIntrinsics | None


@dataclass(frozen=True)
class SimFrame:
    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    joint_names: list[str]
    joint_positions: np.ndarray
    ee_pose: Pose


class SimBackend:
    """The embedded MuJoCo arm of :mod:`sc_mllm_ros.sim`.

    Every world call runs on one dedicated thread: MuJoCo's GL context belongs to the thread that
    made it, and it serialises execution, rendering and the experts. After each primitive the world
    is reset, so the camera shows the scene again for the next attempt (the outcome carries the end state).
    """

    def __init__(
        self,
        split: str = "train",
        category: str = "",
        image_size: int = 112,
        position_noise_px: float = 2.0,
        rotation_noise_deg: float = 6.0,
        seed: int = 0,
    ) -> None:
        self.split, self.category, self.image_size = split, category or None, image_size
        self.position_noise_px, self.rotation_noise_deg = position_noise_px, rotation_noise_deg
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc_mllm_mujoco")
        self._stop = threading.Event()
        self._rng = np.random.default_rng(seed)
        self.world = None
        self.scene_seed = seed
        self.frame: SimFrame | None = None
        self.load_scene(seed)

    def _call(self, fn, *args):
        return self._thread.submit(fn, *args).result()

    def load_scene(self, seed: int) -> str:
        """Build the scene of ``seed``; the object's name."""

        def build() -> str:
            from sc_mllm_ros.sim import PullWorld, sample_scene

            if self.world is not None:
                self.world.close()
            self.world = PullWorld(sample_scene(seed, self.split, self.category), image_size=self.image_size)
            self.scene_seed = seed
            self._snapshot(self.world.reset())
            return self.world.object_name

        return self._call(build)

    def _snapshot(self, obs) -> None:
        w = self.world
        self.frame = SimFrame(
            obs.rgb, obs.depth, obs.intrinsics, w.joint_names, w.joint_positions(), w.ee_pose()
        )

    @property
    def object_name(self) -> str:
        return self.world.object_name

    def base_from_camera(self) -> np.ndarray:
        return self.world.camera_pose.copy()  # the world frame is the robot base (base at the origin)

    def execute(self, pose: Pose, on_phase: PhaseCallback) -> Outcome:
        self._stop.clear()

        def phase(name: str, progress: float) -> None:
            if self._stop.is_set():
                raise ExecutionStopped(f"stopped by the e-stop during {name}")
            on_phase(name, progress)

        def run() -> Outcome:
            try:
                res = self.world.execute(pose, on_phase=phase)
            except ExecutionStopped as err:
                ee = self.world.ee_pose()
                self._snapshot(self.world.reset())
                return Outcome(False, str(err), ee, None, None)
            self._snapshot(self.world.reset())
            return Outcome(True, res.message, res.ee_pose, res.end_obs.rgb, res.end_obs.intrinsics)

        return self._call(run)

    def stop(self) -> None:
        self._stop.set()

    def expert_hints(self) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
        """The automatic position and rotation experts' hints for the loaded scene."""

        def hints():
            from sc_mllm_ros.sim import PositionExpert, RotationExpert

            gt = self.world.ground_truth
            row, col = PositionExpert(self.position_noise_px).hint(gt, self._rng)
            up, forward = RotationExpert(self.rotation_noise_deg).hint(gt, self._rng)
            return (int(round(row)), int(round(col))), up, forward

        return self._call(hints)

    def close(self) -> None:
        if self.world is not None:
            self._call(self.world.close)
        self._thread.shutdown(wait=True)


class MoveItBackend:
    """A real or Gazebo Franka through moveit_py (Jazzy): pre-pose, contact, attach, pull, each planned.

    ``base_from_camera`` is the camera's extrinsic calibration (4x4, base frame <- camera optical frame).
    """

    def __init__(
        self,
        base_from_camera: np.ndarray,
        group: str = "fr3_arm",
        ee_link: str = "fr3_hand_tcp",
        base_frame: str = "fr3_link0",
        pre_distance: float = 0.15,
        pull_distance: float = 0.2,
    ) -> None:
        from moveit.planning import MoveItPy  # only on a full ROS 2 install with MoveIt 2

        self._base_from_camera = np.asarray(base_from_camera, float)
        self.moveit = MoveItPy(node_name="sc_mllm_moveit_py")
        self.arm = self.moveit.get_planning_component(group)
        self.ee_link, self.base_frame = ee_link, base_frame
        self.pre_distance, self.pull_distance = pre_distance, pull_distance
        self._stop = threading.Event()

    def base_from_camera(self) -> np.ndarray:
        return self._base_from_camera.copy()

    def _move_to(self, pose: Pose) -> bool:
        from geometry_msgs.msg import PoseStamped

        goal = PoseStamped()
        goal.header.frame_id = self.base_frame
        p, q = goal.pose.position, goal.pose.orientation
        p.x, p.y, p.z = (float(v) for v in pose.position)
        q.x, q.y, q.z, q.w = (float(v) for v in pose.quaternion)
        self.arm.set_start_state_to_current_state()
        self.arm.set_goal_state(pose_stamped_msg=goal, pose_link=self.ee_link)
        plan = self.arm.plan()
        if not plan or self._stop.is_set():
            return False
        self.moveit.execute(plan.trajectory, controllers=[])
        return not self._stop.is_set()

    def _ee_pose_camera(self) -> Pose:
        with self.moveit.get_planning_scene_monitor().read_only() as scene:
            ee = scene.current_state.get_pose(self.ee_link)
        q = np.array([ee.orientation.x, ee.orientation.y, ee.orientation.z, ee.orientation.w])
        base = Pose(np.array([ee.position.x, ee.position.y, ee.position.z]), rotation_from_quaternion(q))
        return base.transformed(np.linalg.inv(self._base_from_camera), "camera_color_optical_frame")

    def execute(self, pose: Pose, on_phase: PhaseCallback) -> Outcome:
        self._stop.clear()
        goal = pose.transformed(self._base_from_camera, self.base_frame)
        waypoints = (("pre_pose", -self.pre_distance), ("approach", 0.0), ("pull", -self.pull_distance))
        for i, (name, offset) in enumerate(waypoints):
            on_phase(name, i / len(waypoints))
            target = Pose(goal.position + offset * goal.up, goal.rotation, self.base_frame)
            if not self._move_to(target):
                why = "stopped by the e-stop" if self._stop.is_set() else "MoveIt found no plan"
                return Outcome(False, f"{why} for {name}", self._ee_pose_camera(), None, None)
        on_phase("release", 1.0)
        return Outcome(True, "pull primitive completed", self._ee_pose_camera(), None, None)

    def stop(self) -> None:
        self._stop.set()
        # Jazzy's moveit_py spells it "trajactory"; later releases may fix the name.
        name = "get_trajactory_execution_manager"
        if not hasattr(self.moveit, name):
            name = "get_trajectory_execution_manager"
        getattr(self.moveit, name)().stop_execution()

    def close(self) -> None:
        self.moveit.shutdown()
