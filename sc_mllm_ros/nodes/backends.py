"""The two :class:`~sc_mllm_ros.nodes.arm.Arm` implementations: the embedded MuJoCo Panda, and MoveIt 2.

Both take a goal in their base frame, run the pull primitive and return an :class:`Outcome`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import threading

import numpy as np

from sc_mllm_ros.geometry import CameraIntrinsics, Pose, rotation_from_quaternion
from sc_mllm_ros.nodes.arm import Outcome, PhaseCallback, Status

OPTICAL_FRAME = "camera_color_optical_frame"


class ExecutionStopped(RuntimeError):
    """A cancel or the e-stop stopped the primitive."""


@dataclass(frozen=True)
class SimFrame:
    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    joint_names: list[str]
    joint_positions: np.ndarray
    ee_pose: Pose  # camera optical frame


class SimArm:
    """The embedded MuJoCo arm of :mod:`sc_mllm_ros.sim`; its world frame is the robot base.

    Every world call runs on one dedicated thread: MuJoCo's GL context belongs to the thread that
    made it, and it serialises execution, rendering and the experts. After each primitive the world
    is reset, so the camera shows the scene again for the next attempt (the outcome carries the end state).
    """

    def __init__(
        self,
        base_frame: str,
        split: str = "train",
        category: str = "",
        image_size: int = 224,
        seed: int = 0,
    ) -> None:
        self.base_frame = base_frame
        self.split, self.category, self.image_size = split, category or None, image_size
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc_mllm_mujoco")
        self._stop = threading.Event()
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
        """4x4 base <- camera optical frame of the loaded scene (its static transform on tf2)."""
        return self.world.camera_pose.copy()

    def execute(self, goal: Pose, on_phase: PhaseCallback) -> Outcome:
        self._stop.clear()
        base_from_camera = self.base_from_camera()

        def phase(name: str, progress: float) -> None:
            if self._stop.is_set():
                raise ExecutionStopped(f"stopped during {name}")
            on_phase(name, progress)

        def run() -> Outcome:
            try:
                res = self.world.execute(
                    goal.transformed(np.linalg.inv(base_from_camera), OPTICAL_FRAME), on_phase=phase
                )
            except ExecutionStopped as err:
                ee = self.world.ee_pose().transformed(base_from_camera, self.base_frame)
                self._snapshot(self.world.reset())
                return Outcome(Status.CANCELED, str(err), ee)
            self._snapshot(self.world.reset())
            ee = res.ee_pose.transformed(base_from_camera, self.base_frame)
            # The primitive ran (the world reports why a pull did not open the part): the checker grades it.
            return Outcome(Status.COMPLETED, res.message, ee, res.end_obs.rgb, res.end_obs.intrinsics)

        return self._call(run)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self.world is not None:
            self._call(self.world.close)
        self._thread.shutdown(wait=True)


class MoveItArm:
    """A real or Gazebo Franka through moveit_py: pre-pose, contact, pull, each planned and executed.

    A waypoint without a plan ends the primitive as :attr:`Status.UNREACHABLE`; a plan whose execution
    ``MoveItPy.execute`` reports as failed ends it as :attr:`Status.FAILED`; :meth:`stop` stops the
    trajectory execution manager. The end image is not the arm's to give: the node takes the camera's.
    """

    def __init__(
        self,
        group: str = "fr3_arm",
        ee_link: str = "fr3_hand_tcp",
        base_frame: str = "fr3_link0",
        pre_distance: float = 0.15,
        pull_distance: float = 0.2,
    ) -> None:
        from moveit.planning import MoveItPy  # only on a full ROS 2 install with MoveIt 2

        self.moveit = MoveItPy(node_name="sc_mllm_moveit_py")
        self.arm = self.moveit.get_planning_component(group)
        self.ee_link, self.base_frame = ee_link, base_frame
        self.pre_distance, self.pull_distance = pre_distance, pull_distance
        self._stop = threading.Event()

    def _plan_and_execute(self, pose: Pose, name: str) -> tuple[Status, str]:
        from geometry_msgs.msg import PoseStamped

        goal = PoseStamped()
        goal.header.frame_id = self.base_frame
        p, q = goal.pose.position, goal.pose.orientation
        p.x, p.y, p.z = (float(v) for v in pose.position)
        q.x, q.y, q.z, q.w = (float(v) for v in pose.quaternion)
        self.arm.set_start_state_to_current_state()
        self.arm.set_goal_state(pose_stamped_msg=goal, pose_link=self.ee_link)
        plan = self.arm.plan()
        if self._stop.is_set():
            return Status.CANCELED, f"stopped before {name}"
        if not plan:
            return Status.UNREACHABLE, f"MoveIt found no plan for {name}"
        status = self.moveit.execute(plan.trajectory, controllers=[])
        if self._stop.is_set():
            return Status.CANCELED, f"stopped during {name}"
        if not status:
            return Status.FAILED, f"execution of {name} failed: {getattr(status, 'status', status)}"
        return Status.COMPLETED, ""

    def _ee_pose(self) -> Pose:
        with self.moveit.get_planning_scene_monitor().read_only() as scene:
            ee = scene.current_state.get_pose(self.ee_link)
        q = np.array([ee.orientation.x, ee.orientation.y, ee.orientation.z, ee.orientation.w])
        p = np.array([ee.position.x, ee.position.y, ee.position.z])
        return Pose(p, rotation_from_quaternion(q), self.base_frame)

    def execute(self, goal: Pose, on_phase: PhaseCallback) -> Outcome:
        self._stop.clear()
        waypoints = (("pre_pose", -self.pre_distance), ("approach", 0.0), ("pull", -self.pull_distance))
        for i, (name, offset) in enumerate(waypoints):
            on_phase(name, i / len(waypoints))
            target = Pose(goal.position + offset * goal.up, goal.rotation, self.base_frame)
            status, why = self._plan_and_execute(target, name)
            if status != Status.COMPLETED:
                return Outcome(status, why, self._ee_pose())
        on_phase("release", 1.0)
        return Outcome(Status.COMPLETED, "pull primitive completed", self._ee_pose())

    def stop(self) -> None:
        self._stop.set()
        # moveit_py 2.10 spells it "trajactory"; 2.12 fixed the name.
        name = "get_trajectory_execution_manager"
        if not hasattr(self.moveit, name):
            name = "get_trajactory_execution_manager"
        getattr(self.moveit, name)().stop_execution()

    def close(self) -> None:
        self.moveit.shutdown()
