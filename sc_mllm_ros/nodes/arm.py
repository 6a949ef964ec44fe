"""The arm seam: one :class:`Arm` Protocol, and :class:`ArmNode`, the ``/sc_mllm/execute_pose`` action.

Two nodes serve the action, each over its own arm (in the LeRobot ``Robot`` / rosetta Protocol style: the
node never asks which arm it drives):

- ``sim_node`` (:mod:`sc_mllm_ros.nodes.sim_node`): the embedded MuJoCo world, which is also the camera;
- ``executor_node`` (:mod:`sc_mllm_ros.nodes.executor`): a real or Gazebo Franka through moveit_py.

Every goal is looked up on tf2 (base frame <- the goal's frame) and checked against the safety envelope
before the arm sees it; a refused goal is aborted with the reason and never sent. ``/sc_mllm/pause``
(std_srvs/SetBool) stops a running primitive and refuses goals until released; cancelling a goal stops the
arm and the action reports canceled. After each primitive that ran, the end state goes out on
``/sc_mllm/execution_outcome`` with the goal's episode and attempt, for the checker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
import threading
from typing import Protocol

from geometry_msgs.msg import PoseStamped
import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool

from sc_mllm_msgs.action import ExecutePose
from sc_mllm_msgs.msg import ExecutionOutcome
from sc_mllm_ros import names
from sc_mllm_ros.episode.record import BadInput
from sc_mllm_ros.episode.safety import GoalRejected
from sc_mllm_ros.geometry import CameraIntrinsics, Pose
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.qos import EVENTS_QOS
from sc_mllm_ros.nodes.runtime import declare
from sc_mllm_ros.nodes.safety_gate import declare_base_frame, declare_envelope, lookup

PhaseCallback = Callable[[str, float], None]


class Status(IntEnum):
    """How a primitive ended; the values are ``ExecutionOutcome.STATUS_*``."""

    COMPLETED = ExecutionOutcome.STATUS_COMPLETED
    UNREACHABLE = ExecutionOutcome.STATUS_UNREACHABLE
    FAILED = ExecutionOutcome.STATUS_FAILED
    CANCELED = ExecutionOutcome.STATUS_CANCELED
    REJECTED = ExecutionOutcome.STATUS_REJECTED


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str
    ee_pose: Pose  # base frame
    end_rgb: np.ndarray | None = None  # None: the node takes the first camera frame after execution
    intrinsics: CameraIntrinsics | None = None


class Arm(Protocol):
    """What an arm node drives: goals in ``base_frame``, one primitive at a time."""

    base_frame: str

    def execute(self, goal: Pose, on_phase: PhaseCallback) -> Outcome:
        """Run the pull primitive at ``goal`` (base frame); blocks until it ends or :meth:`stop` stops it."""
        ...

    def stop(self) -> None:
        """Stop the running primitive (from another thread); it returns :attr:`Status.CANCELED`."""
        ...

    def close(self) -> None: ...


class ArmNode(Node):
    """Serves ``/sc_mllm/execute_pose`` and ``/sc_mllm/pause`` over ``self.arm`` (set by the subclass).

    Subclasses fill ``self.tf_buffer`` (a listener, or the transforms they publish themselves) and may
    override :meth:`end_image` to supply the end image an arm does not return.
    """

    arm: Arm

    def __init__(self, name: str, **kwargs) -> None:
        from tf2_ros import Buffer

        super().__init__(name, **kwargs)
        self.envelope = declare_envelope(self)
        self.base_frame = declare_base_frame(self)
        self.tf_timeout_s = declare(
            self, "tf_timeout_s", 1.0, "longest wait for the goal's transform on tf2 (s)", (0.0, 30.0)
        )
        self.tf_buffer = Buffer()
        self.paused = False
        self._busy = threading.Lock()
        self.group = ReentrantCallbackGroup()
        self.outcome_pub = self.create_publisher(ExecutionOutcome, names.EXECUTION_OUTCOME, EVENTS_QOS)
        self.error_pub = self.create_publisher(String, names.ERRORS, EVENTS_QOS)

    def serve(self) -> None:
        """Open the action and the pause service (once ``self.arm`` exists)."""
        self.create_service(SetBool, names.PAUSE, self._on_pause, callback_group=self.group)
        self._action = ActionServer(
            self,
            ExecutePose,
            names.EXECUTE_POSE,
            self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=self.group,
        )

    # -- pause / e-stop and cancel ------------------------------------------------------------------------
    def _on_pause(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        self.paused = bool(req.data)
        if self.paused:
            self.arm.stop()
        res.success, res.message = True, "paused: goals are refused" if self.paused else "resumed"
        self.get_logger().warn(res.message)
        return res

    def _on_goal(self, goal: ExecutePose.Goal) -> GoalResponse:
        if self._busy.locked():
            self.error(f"goal of {goal.episode_id} rejected: another primitive is running")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        self.get_logger().warn(f"cancel requested for {goal_handle.request.episode_id}: stopping the arm")
        self.arm.stop()
        return CancelResponse.ACCEPT

    def error(self, text: str) -> None:
        self.get_logger().error(text)
        self.error_pub.publish(String(data=f"{self.get_name()}: {text}"))

    # -- the action ----------------------------------------------------------------------------------------
    def check(self, target: PoseStamped) -> tuple[Pose, np.ndarray]:
        """The goal in the base frame and base <- goal frame, or :class:`GoalRejected` with the reason."""
        if self.paused:
            raise GoalRejected("execution is paused (e-stop); release it with /sc_mllm/pause false")
        try:
            pose = conv.pose_from_msg(target)
        except BadInput as err:
            raise GoalRejected(str(err)) from err
        if not pose.frame_id:
            raise GoalRejected("goal has no frame_id")
        stamp = Time.from_msg(target.header.stamp)
        # A zero stamp asks for the latest transform (tf2's convention).
        base_from_goal = lookup(
            self.tf_buffer,
            self.base_frame,
            pose.frame_id,
            stamp if stamp.nanoseconds else None,
            self.tf_timeout_s,
        )
        base = self.envelope.check(pose, base_from_goal)
        return Pose(base.position, base.rotation, self.base_frame), base_from_goal

    def end_image(self, outcome: Outcome, ended: Time) -> Outcome:
        """The outcome with an end image (the primitive ended at ``ended``); a simulated arm has its own."""
        return outcome

    def _execute(self, goal_handle) -> ExecutePose.Result:
        goal: ExecutePose.Goal = goal_handle.request
        result = ExecutePose.Result()
        if not self._busy.acquire(blocking=False):
            goal_handle.abort()
            result.status, result.message = Status.REJECTED, "another primitive is running"
            return result
        try:
            try:
                base_goal, base_from_goal = self.check(goal.target)
            except GoalRejected as err:
                self.error(f"goal of episode '{goal.episode_id}' rejected, not sent to the arm: {err}")
                goal_handle.abort()
                result.status, result.message = Status.REJECTED, f"rejected: {err}"
                return result

            def on_phase(phase: str, progress: float) -> None:
                goal_handle.publish_feedback(ExecutePose.Feedback(phase=phase, progress=float(progress)))

            if goal_handle.is_cancel_requested:  # cancelled before the arm started: nothing to stop
                goal_handle.canceled()
                result.status, result.message = Status.CANCELED, "canceled before the arm moved"
                return result
            try:
                outcome = self.arm.execute(base_goal, on_phase)
            except Exception as err:  # an arm's error must reach the client, not only the log
                self.error(f"the arm failed on episode '{goal.episode_id}': {err!r}")
                goal_handle.abort()
                result.status, result.message = Status.FAILED, f"the arm failed: {err!r}"
                return result
        finally:
            self._busy.release()
        if outcome.status == Status.CANCELED:  # a cancel (or the e-stop) stopped it; a late cancel did not
            result.status, result.message = Status.CANCELED, outcome.message
            goal_handle.canceled() if goal_handle.is_cancel_requested else goal_handle.abort()
            return result
        outcome = self.end_image(outcome, self.get_clock().now())
        self.publish_outcome(
            goal, outcome, np.linalg.inv(base_from_goal), goal.target.header.frame_id, result
        )
        goal_handle.succeed() if outcome.status == Status.COMPLETED else goal_handle.abort()
        return result

    def publish_outcome(
        self,
        goal: ExecutePose.Goal,
        outcome: Outcome,
        goal_from_base: np.ndarray,
        goal_frame: str,
        result: ExecutePose.Result,
    ) -> None:
        """Fill the action result and publish the outcome for the checker (end pose in the goal's frame)."""
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=goal_frame)
        result.success, result.status = outcome.status == Status.COMPLETED, outcome.status
        result.message = outcome.message
        result.final_ee_pose = conv.pose_msg(outcome.ee_pose.transformed(goal_from_base, goal_frame), header)
        msg = ExecutionOutcome(header=header, episode_id=goal.episode_id, attempt=goal.attempt)
        msg.completed, msg.status, msg.message = result.success, result.status, result.message
        msg.final_ee_pose = result.final_ee_pose
        if outcome.end_rgb is not None:
            msg.end_image = conv.image_msg(outcome.end_rgb, "rgb8", header)
            msg.camera_info = conv.camera_info_msg(outcome.intrinsics, header)
        self.outcome_pub.publish(msg)

    def close(self) -> None:
        self.arm.close()
