"""A blocking commander of the graph in the style of ``nav2_simple_commander``: what demos and tests drive.

:class:`ScMllmCommander` is a node whose subscriptions run on an executor's threads while its methods
block the caller (never a callback) until the graph answers. Results are typed
(:class:`EpisodeStatus`, :class:`EpisodeResult`), never read out of error text.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
import enum
import threading
import time

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from sc_mllm_msgs.action import RunEpisode
from sc_mllm_msgs.msg import AdapterVersion, FailureReport, PosePrediction
from sc_mllm_msgs.srv import RequestCorrection
from sc_mllm_ros import names
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS, SENSOR_QOS

KEEP = 100  # messages of each kind kept for the caller; older ones are dropped


class EpisodeStatus(enum.Enum):
    SUCCEEDED = "succeeded"  # the loop ended in success
    FAILED = "failed"  # the loop ran, and its corrections ran out
    REFUSED = "refused"  # the host refused the task (bad task text, no fresh frame) before any attempt
    REJECTED = "rejected"  # the action server did not take the goal
    CANCELED = "canceled"


@dataclass(frozen=True)
class EpisodeResult:
    status: EpisodeStatus
    success: bool
    attempts: int
    causes: list[str]
    episode_id: str
    message: str
    feedback: list[RunEpisode.Feedback] = field(default_factory=list)  # one per attempt, in order


class ScMllmCommander(Node):
    def __init__(self, name: str = "sc_mllm_commander", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self._cv = threading.Condition()
        self.predictions: deque[PosePrediction] = deque(maxlen=KEEP)
        self.reports: deque[FailureReport] = deque(maxlen=KEEP)
        self.versions: deque[AdapterVersion] = deque(maxlen=KEEP)
        self.errors: deque[str] = deque(maxlen=KEEP)
        self.frames = 0
        self._episode = None  # the goal handle of the episode started last, and its feedback
        self._feedback: list[RunEpisode.Feedback] = []
        group = ReentrantCallbackGroup()
        self.task_pub = self.create_publisher(String, names.TASK, 10)
        for msg_type, topic, store, qos in (
            (PosePrediction, names.PREDICTION, self.predictions, EVENTS_QOS),
            (FailureReport, names.FAILURE_REPORT, self.reports, EVENTS_QOS),
            (AdapterVersion, names.ADAPTER_VERSION, self.versions, LATCHED_QOS),
        ):
            self.create_subscription(
                msg_type, topic, lambda m, s=store: self._add(s, m), qos, callback_group=group
            )
        self.create_subscription(
            String, names.ERRORS, lambda m: self._add(self.errors, m.data), EVENTS_QOS, callback_group=group
        )
        self.create_subscription(Image, names.COLOR, self._on_frame, SENSOR_QOS, callback_group=group)
        self.episode_client = ActionClient(self, RunEpisode, names.RUN_EPISODE, callback_group=group)
        self.correction = self.create_client(
            RequestCorrection, names.REQUEST_CORRECTION, callback_group=group
        )
        self.scene_client = self.create_client(Trigger, names.SCENE, callback_group=group)
        self.next_scene_client = self.create_client(Trigger, names.NEXT_SCENE, callback_group=group)
        self.pause_client = self.create_client(SetBool, names.PAUSE, callback_group=group)

    def _add(self, store: deque, item) -> None:
        with self._cv:
            store.append(item)
            self._cv.notify_all()

    def _notify(self, *_) -> None:
        with self._cv:
            self._cv.notify_all()

    def _on_frame(self, _msg: Image) -> None:
        with self._cv:
            self.frames += 1
            self._cv.notify_all()

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str):
        """Block until ``predicate()`` is truthy (checked on every event); its value, or TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not (value := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
                self._cv.wait(min(left, 0.5))
            return value

    def _future(self, future, timeout: float, what: str):
        future.add_done_callback(self._notify)
        return self.wait_for(future.done, timeout, what) and future.result()

    def call(self, client, request, timeout: float = 60.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} is not available")
        return self._future(client.call_async(request), timeout, f"{client.srv_name} to answer")

    def wait_for_frames(self, count: int = 1, timeout: float = 30.0) -> None:
        start = self.frames
        self.wait_for(lambda: self.frames >= start + count, timeout, "camera frames")

    def start_episode(
        self,
        task: str,
        max_corrections: int = 3,
        position_expert: bool = True,
        rotation_expert: bool = True,
        timeout: float = 60.0,
    ) -> bool:
        """Send an episode to the model host's ``run_episode`` action; whether it took the goal.

        Follow it with :meth:`episode_feedback`, :meth:`cancel_episode` and :meth:`episode_result`.
        """
        if not self.episode_client.wait_for_server(timeout_sec=timeout):
            raise TimeoutError(f"action {names.RUN_EPISODE} is not available")
        feedback: list[RunEpisode.Feedback] = []
        self._feedback = feedback
        goal = RunEpisode.Goal(
            task=task,
            max_corrections=max_corrections,
            position_expert=position_expert,
            rotation_expert=rotation_expert,
        )
        sent = self.episode_client.send_goal_async(
            goal, feedback_callback=lambda m: self._add(feedback, m.feedback)
        )
        self._episode = self._future(sent, timeout, f"{names.RUN_EPISODE} to take the goal")
        return self._episode.accepted

    def episode_feedback(self) -> list[RunEpisode.Feedback]:
        """The feedback of the episode started last, one per attempt so far."""
        return list(self._feedback)

    def cancel_episode(self, timeout: float = 30.0) -> None:
        """Ask the host to stop the episode started last before its next correction."""
        self._future(self._episode.cancel_goal_async(), timeout, "the cancel request")

    def episode_result(self, timeout: float = 600.0) -> EpisodeResult:
        """Wait for the episode started last to end; its typed result."""
        if not self._episode.accepted:
            return EpisodeResult(EpisodeStatus.REJECTED, False, 0, [], "", "the goal was rejected")
        response = self._future(self._episode.get_result_async(), timeout, "the episode")
        res = response.result
        if response.status == GoalStatus.STATUS_SUCCEEDED:
            status = EpisodeStatus.SUCCEEDED
        elif response.status == GoalStatus.STATUS_CANCELED:
            status = EpisodeStatus.CANCELED
        else:
            status = EpisodeStatus.FAILED if res.attempts else EpisodeStatus.REFUSED
        return EpisodeResult(
            status,
            res.success,
            res.attempts,
            list(res.causes),
            res.episode_id,
            res.message,
            self.episode_feedback(),
        )

    def run_episode(
        self, task: str, max_corrections: int = 3, timeout: float = 600.0, **experts: bool
    ) -> EpisodeResult:
        """Run one episode and wait for its result; ``experts``: see :meth:`start_episode`."""
        self.start_episode(task, max_corrections, timeout=min(timeout, 60.0), **experts)
        return self.episode_result(timeout)

    def request_correction(
        self,
        episode_id: str = "",
        automatic: bool = True,
        execute: bool = True,
        timeout: float = 120.0,
        **fields,
    ) -> RequestCorrection.Response:
        req = RequestCorrection.Request(
            episode_id=episode_id, use_automatic_experts=automatic, execute=execute, **fields
        )
        return self.call(self.correction, req, timeout)

    def wait_for_report(self, episode_id: str, attempt: int, timeout: float = 120.0) -> FailureReport:
        """The checker's verdict on one attempt of an episode."""
        return self.wait_for(
            lambda: next(
                (r for r in self.reports if r.episode_id == episode_id and r.attempt == attempt), None
            ),
            timeout,
            f"the report on attempt {attempt} of episode {episode_id}",
        )

    @property
    def adapter_version(self) -> int:
        """The newest adapter version the learner announced (0: none yet)."""
        return max((v.version for v in self.versions), default=0)

    def wait_for_version(self, newer_than: int, timeout: float = 120.0) -> AdapterVersion:
        return self.wait_for(
            lambda: next((v for v in self.versions if v.version > newer_than), None),
            timeout,
            f"an adapter version newer than {newer_than}",
        )

    def scene_object(self, timeout: float = 60.0) -> str:
        """The object of the scene the simulated arm shows."""
        return self.call(self.scene_client, Trigger.Request(), timeout).message

    def next_scene(self, timeout: float = 60.0) -> str:
        res = self.call(self.next_scene_client, Trigger.Request(), timeout)
        if not res.success:
            raise RuntimeError(f"next scene refused: {res.message}")
        return res.message
