"""The model host: one process and one model serving the policy, the checker and ``/request_correction``.

In the llama_ros style, the owner of the model serves everything that needs it. The policy, checker and
correction nodes stay separate nodes (``ros2 node list`` shows the design card's names) around one
:class:`~sc_mllm_ros.episode.serving.ModelServer`, one episode store private to this process and one
worker for model calls. The host node ``sc_mllm_model_host`` serves the ``sc_mllm/run_episode`` action
with :func:`~sc_mllm_ros.episode.loop.run_episode`, the function ``sc-mllm eval`` runs; its arm is the
``sc_mllm/execute_pose`` action (the simulator node or the MoveIt executor), its checker a direct call
of the model that publishes ``sc_mllm/failure_report`` for observers. It hot-swaps the adapter
announced on ``sc_mllm/adapter_version`` between answers. Its automatic experts
(:class:`~sc_mllm_ros.nodes.expert_hints.RgbdExperts`) read the episode's recorded RGB-D frame and serve
``sc_mllm/expert_hints``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
import threading

from rclpy.action import ActionClient, ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Header, String

from sc_mllm_msgs.action import ExecutePose, RunEpisode
from sc_mllm_msgs.msg import AdapterVersion, CorrectionSample, ExecutionOutcome, PosePrediction
from sc_mllm_ros import names
from sc_mllm_ros.episode.loop import ArmOutcome, run_episode, Step
from sc_mllm_ros.episode.record import Attempt, BadInput, EpisodeRecord, new_episode_id, parse_task
from sc_mllm_ros.episode.serving import ModelServer
from sc_mllm_ros.episode.store import EpisodeStore, SampleStore, StoredSample
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.checker import CheckerNode
from sc_mllm_ros.nodes.correction import CorrectionNode
from sc_mllm_ros.nodes.expert_hints import RgbdExperts
from sc_mllm_ros.nodes.policy import PolicyNode
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS
from sc_mllm_ros.nodes.runtime import console_main, data_dir, declare, load_model, model_version
from sc_mllm_ros.nodes.safety_gate import GoalGate


@dataclass(frozen=True)
class Execution:
    """A goal on its way to the arm: ``accepted`` answers first, ``outcome`` when the primitive ended."""

    prediction: PosePrediction  # as published
    accepted: Future
    outcome: Future

    @classmethod
    def refused(cls, prediction: PosePrediction, message: str) -> Execution:
        ex = cls(prediction, Future(), Future())
        ex.accepted.set_result(False)
        ex.outcome.set_result(ArmOutcome(False, message))
        return ex


class ActionArm:
    """The loop's arm: the ``execute_pose`` action, behind this host's safety gate.

    The end state (image, end-effector pose) of an executed goal comes on ``execution_outcome``; only
    the outcomes of goals this host sent are kept, until their result arrives.
    """

    def __init__(self, host: ModelHost) -> None:
        self.host = host
        group = ReentrantCallbackGroup()
        self.client = ActionClient(host, ExecutePose, names.EXECUTE_POSE, callback_group=group)
        host.create_subscription(
            ExecutionOutcome, names.EXECUTION_OUTCOME, self._on_end_state, EVENTS_QOS, callback_group=group
        )
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._ends: dict[str, ExecutionOutcome] = {}
        self._waiting: dict[str, tuple[str, Future]] = {}

    def send(self, record: EpisodeRecord, attempt: Attempt) -> Execution:
        pred, rejected = self.host.policy.release(record, attempt)
        if rejected:
            return Execution.refused(pred, f"rejected by the safety envelope, not sent: {rejected}")
        if not self.client.server_is_ready():
            return Execution.refused(pred, f"the arm's action {names.EXECUTE_POSE} is not available")
        index = next(i for i, a in enumerate(record.attempts) if a is attempt)
        # Outcomes are matched by episode and attempt, so a late end state never grades the wrong attempt.
        eid = f"{record.episode_id}#{index}"
        with self._lock:
            self._in_flight.add(eid)
            self._ends.pop(eid, None)
        ex = Execution(pred, Future(), Future())
        # A goal whose result never comes (a lost arm) ends as not completed instead of waiting forever.
        late = ArmOutcome(False, f"the arm did not finish within {self.host.timeout:.0f} s")
        timer = threading.Timer(self.host.timeout, self._finish, (eid, ex, late))
        timer.daemon = True
        timer.start()
        ex.outcome.add_done_callback(lambda _: timer.cancel())
        goal = ExecutePose.Goal(
            target=pred.pose,
            primitive=ExecutePose.Goal.PRIMITIVE_PULL,
            episode_id=record.episode_id,
            attempt=index,
        )
        self.client.send_goal_async(goal).add_done_callback(lambda f: self._on_response(eid, f, ex))
        return ex

    def execute(self, record: EpisodeRecord, attempt: Attempt) -> ArmOutcome:
        return self.send(record, attempt).outcome.result()

    def _finish(self, eid: str, ex: Execution, outcome: ArmOutcome) -> None:
        """End ``ex`` with ``outcome``, once: the first of the result and the time limit wins."""
        with self._lock:
            if ex.outcome.done():
                return
            self._in_flight.discard(eid)
            self._ends.pop(eid, None)
            self._waiting.pop(eid, None)
            if not ex.accepted.done():
                ex.accepted.set_result(outcome.completed)
            ex.outcome.set_result(outcome)

    def _on_response(self, eid: str, future, ex: Execution) -> None:
        handle = future.result()
        if not handle.accepted:
            self._finish(
                eid, ex, ArmOutcome(False, "the arm refused the goal (another primitive is running)")
            )
            return
        with self._lock:
            if ex.accepted.done():  # the time limit ended it first
                return
            ex.accepted.set_result(True)
        handle.get_result_async().add_done_callback(lambda f: self._on_result(eid, f, ex))

    def _on_result(self, eid: str, future, ex: Execution) -> None:
        result = future.result().result
        if not result.success:
            self._finish(eid, ex, ArmOutcome(False, result.message))
            return
        with self._lock:
            end = self._ends.pop(eid, None)
            if end is None:  # the end state is still on its way
                self._waiting[eid] = (result.message, ex)
                return
        self._complete(eid, ex, result.message, end)

    def _on_end_state(self, msg: ExecutionOutcome) -> None:
        eid = f"{msg.episode_id}#{msg.attempt}"
        with self._lock:
            if eid not in self._in_flight:
                return  # another client's goal
            waiting = self._waiting.pop(eid, None)
            if waiting is None:
                self._ends[eid] = msg
                return
        self._complete(eid, waiting[1], waiting[0], msg)

    def _complete(self, eid: str, ex: Execution, message: str, end: ExecutionOutcome) -> None:
        try:
            outcome = conv.arm_outcome(True, message, end)
        except BadInput as err:
            outcome = ArmOutcome(False, f"the arm's end state is unusable: {err}")
        self._finish(eid, ex, outcome)


class ModelHost(Node):
    """Owns the model; see the module docstring. ``nodes`` are this node and the three it serves through."""

    def __init__(
        self,
        server: ModelServer | None = None,
        overrides: dict[str, dict] | None = None,
        cli_args: list[str] | None = None,
    ) -> None:
        overrides = overrides or {}

        def params(name: str) -> dict:
            given = overrides.get(name, {})
            return {
                "cli_args": cli_args,
                "parameter_overrides": [Parameter(k, value=v) for k, v in given.items()],
            }

        super().__init__("sc_mllm_model_host", **params("sc_mllm_model_host"))
        path = declare(self, "model_path", "", "SC-MLLM checkpoint directory (empty: the shipped model)")
        root = data_dir(self)
        self.timeout = declare(
            self, "timeout_s", 60.0, "wait limit for the arm and the experts (s)", (1.0, 600.0)
        )
        self.server = server or ModelServer(
            load_model(path), model_version=model_version(path)
        )
        self.episodes = EpisodeStore(root / "episodes.sqlite")
        self.samples = SampleStore(root / "samples.sqlite")
        # Model calls (corrections, adapter swaps) on one worker, never on the executor's threads; episodes
        # on another, one at a time (they wait on the arm while the model may answer a correction).
        self._model_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc_mllm_model")
        self._episode_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc_mllm_episode")
        self.running_episode = ""  # the episode the loop runs now; corrections of it are refused meanwhile
        self.gate = GoalGate(self)
        self.error_pub = self.create_publisher(String, names.ERRORS, EVENTS_QOS)
        self.policy = PolicyNode(self, **params("sc_mllm_policy"))
        self.checker = CheckerNode(self, **params("sc_mllm_checker"))
        self.correction = CorrectionNode(self, **params("sc_mllm_correction"))
        self.arm = ActionArm(self)
        self.experts = RgbdExperts(self)
        self.create_subscription(AdapterVersion, names.ADAPTER_VERSION, self._on_adapter, LATCHED_QOS)
        self._episode_server = ActionServer(
            self,
            RunEpisode,
            names.RUN_EPISODE,
            self._run_episode,
            cancel_callback=lambda _: CancelResponse.ACCEPT,  # honoured before the next correction
            callback_group=ReentrantCallbackGroup(),
        )
        self.get_logger().info(
            f"model host ready: model {self.server.model_version}, adapter v{self.server.adapter_version}"
        )

    @property
    def nodes(self) -> list[Node]:
        return [self, self.policy, self.checker, self.correction]

    # -- the worker pools: every future is read ----------------------------------------------------------
    def _read(self, future: Future) -> None:
        """Log a worker task's unexpected exception; the result itself is the caller's, or dropped."""
        err = None if future.cancelled() else future.exception()
        if err is not None and not self.context.ok():
            return  # a task that outlived Ctrl-C cannot publish its result: nothing went wrong
        if err is not None and not isinstance(err, BadInput):  # bad input was reported where it was found
            self.get_logger().error(f"a worker task failed: {err!r}")

    def call_model(self, fn: Callable, *args) -> Future:
        future = self._model_pool.submit(fn, *args)
        future.add_done_callback(self._read)
        return future

    def start_episode(
        self, record: EpisodeRecord, max_corrections: int, experts, on_step=None, stop=None
    ) -> Future:
        """Run ``record``'s episode on the episode worker (queued behind the one running, if any)."""
        self.episodes.add(record)
        future = self._episode_pool.submit(self._episode, record, max_corrections, experts, on_step, stop)
        future.add_done_callback(self._read)
        return future

    def queue(self, fn: Callable, *args) -> Future:
        """Run ``fn`` on the episode worker, after the episode running now (a person's clicked correction)."""
        future = self._episode_pool.submit(fn, *args)
        future.add_done_callback(self._read)
        return future

    def error(self, node: Node, text: str) -> None:
        node.get_logger().error(text)
        self.error_pub.publish(String(data=f"{node.get_name()}: {text}"))

    # -- the loop ----------------------------------------------------------------------------------------
    def _episode(self, record: EpisodeRecord, max_corrections: int, experts, on_step, stop):
        def step(s: Step) -> None:
            self.episodes.set_attempts(record.episode_id, record.attempts)
            if on_step is not None:
                on_step(s)

        self.running_episode = record.episode_id
        try:
            return run_episode(
                record,
                self.server,
                self.arm,
                self.checker,
                experts,
                max_corrections,
                self.learn,
                on_step=step,
                stop=stop,
            )
        except BadInput as err:
            self.error(self, f"episode {record.episode_id} ('{record.task}') stopped: {err}")
            raise
        finally:
            self.running_episode = ""

    def learn(self, record: EpisodeRecord, attempt: Attempt) -> None:
        """A correction the checker accepted: stored durably, then the learner is told."""
        sample = StoredSample.from_attempt(record, attempt)
        self.samples.add(sample)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=conv.OPTICAL_FRAME)
        corrected = conv.prediction_msg(
            attempt, record.episode_id, record.task, header, header.frame_id, self.server.model_version
        )
        self.correction.sample_pub.publish(
            CorrectionSample(
                header=header,
                sample_id=sample.sample_id,
                episode_id=record.episode_id,
                task=record.task,
                corrected=corrected,
            )
        )
        self.get_logger().info(
            f"correction of episode {record.episode_id} stored as sample {sample.sample_id}"
        )

    def _run_episode(self, goal_handle) -> RunEpisode.Result:
        goal: RunEpisode.Goal = goal_handle.request
        result = RunEpisode.Result()
        try:
            record = EpisodeRecord(
                new_episode_id(), goal.task, parse_task(goal.task), self.policy.latest_frame()
            )
        except BadInput as err:
            result.message = f"refused: {err}"
            self.error(self, f"episode '{goal.task}' {result.message}")
            goal_handle.abort()
            return result
        result.episode_id = record.episode_id

        def feedback(s: Step) -> None:
            goal_handle.publish_feedback(
                RunEpisode.Feedback(
                    attempt=s.index,
                    verdict=s.verdict.value,
                    correction=s.attempt.family == "correction",
                    adapter_version=int(s.attempt.adapter_version),
                    answer_text=s.attempt.text,
                )
            )

        experts = self.experts.choose(goal.position_expert, goal.rotation_expert)
        try:
            run = self.start_episode(
                record,
                int(goal.max_corrections),
                experts,
                feedback,
                stop=lambda: goal_handle.is_cancel_requested,
            ).result()
        except (BadInput, TimeoutError) as err:
            result.attempts, result.causes = len(record.attempts), [a.cause or "" for a in record.attempts]
            result.message = f"stopped after {len(record.attempts)} attempt(s): {err}"
            goal_handle.abort()
            return result
        result.success, result.attempts, result.causes = run.success, run.attempts, run.causes
        result.message = f"{run.verdicts[-1].value} after {run.attempts} attempt(s)"
        if run.stopped:
            result.message += "; canceled before the next correction"
            goal_handle.canceled()
        elif run.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def _on_adapter(self, msg: AdapterVersion) -> None:
        # The swap waits for the answer in progress (the server's lock), never for the arm.
        if msg.version > self.server.adapter_version:
            self.call_model(self._swap, msg.path, msg.version)

    def _swap(self, path: str, version: int) -> None:
        if self.server.swap_adapter(path, version):
            self.get_logger().info(f"now serving adapter v{version} from {path}")

    def close(self) -> None:
        # An episode may be waiting on the arm: leave it, so that Ctrl-C ends the process at once.
        self._episode_pool.shutdown(wait=False, cancel_futures=True)
        self._model_pool.shutdown(wait=True, cancel_futures=True)


def main(args: list[str] | None = None) -> None:
    console_main(lambda: ModelHost().nodes)
