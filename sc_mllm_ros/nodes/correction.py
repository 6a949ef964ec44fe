"""The correction node: the ``/request_correction`` expert-feedback service.

Builds the correction prompt from the expert's hints (the request's, or the automatic experts' of the
simulation), re-predicts, optionally executes and waits for the checker's verdict, and returns the
corrected pose. A correction that succeeds is stored durably and announced to the learner on
``/sc_mllm/correction_sample``. One correction runs at a time; a second request is refused.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import threading

from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import Header

from sc_mllm_msgs.action import ExecutePose
from sc_mllm_msgs.msg import AdapterVersion, CorrectionSample, FailureReport, PosePrediction
from sc_mllm_msgs.srv import ExpertHints, RequestCorrection
from sc_mllm_ros.episode.agent import ModelServer, resolve_hints
from sc_mllm_ros.episode.record import BadInput, EpisodeRecord
from sc_mllm_ros.episode.safety import GoalRejected
from sc_mllm_ros.episode.store import EpisodeStore, SampleStore, StoredSample
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS
from sc_mllm_ros.nodes.runtime import console_main, data_dir, declare, shared_model
from sc_mllm_ros.nodes.safety_gate import GoalGate


def _wait(future, timeout: float, what: str):
    """Block this (worker) thread until an rclpy future is done; the executor's other threads spin."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f"{what} did not answer within {timeout:.0f} s")
    return future.result()


class CorrectionNode(Node):
    def __init__(
        self,
        server: ModelServer | None = None,
        episodes: EpisodeStore | None = None,
        samples: SampleStore | None = None,
        **kwargs,
    ) -> None:
        super().__init__("sc_mllm_correction", **kwargs)
        root = data_dir(self)
        self.timeout = declare(self, "timeout_s", 60.0, "wait limit per step", (1.0, 600.0))
        self.server = shared_model(self, server)
        self.gate = GoalGate(self)
        self.episodes = episodes if episodes is not None else EpisodeStore(root / "episodes.sqlite")
        self.samples = samples if samples is not None else SampleStore(root / "samples.sqlite")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc_mllm_correction")
        self._running = threading.Lock()
        self._running_episode = ""
        # episode id -> (event, reports) of the executions this node waits for
        self._reports: dict[str, tuple[threading.Event, list]] = {}
        clients = ReentrantCallbackGroup()
        self.hints_client = self.create_client(
            ExpertHints, "/sc_mllm/sim/expert_hints", callback_group=clients
        )
        self.execute_client = ActionClient(self, ExecutePose, "/sc_mllm/execute_pose", callback_group=clients)
        self.prediction_pub = self.create_publisher(PosePrediction, "/sc_mllm/prediction", EVENTS_QOS)
        self.goal_pub = self.create_publisher(PoseStamped, "/sc_mllm/goal_pose", 10)
        self.sample_pub = self.create_publisher(CorrectionSample, "/sc_mllm/correction_sample", EVENTS_QOS)
        self.create_subscription(
            FailureReport, "/sc_mllm/failure_report", self._on_report, EVENTS_QOS, callback_group=clients
        )
        self.create_subscription(AdapterVersion, "/sc_mllm/adapter_version", self._on_adapter, LATCHED_QOS)
        self.create_service(
            RequestCorrection,
            "/request_correction",
            self._on_request,
            callback_group=ReentrantCallbackGroup(),
        )

    def _on_adapter(self, msg: AdapterVersion) -> None:
        if msg.version > self.server.adapter_version:
            self._pool.submit(self.server.swap_adapter, msg.path, msg.version)

    def _on_report(self, msg: FailureReport) -> None:
        waiter = self._reports.get(msg.episode_id)
        if waiter is not None:
            waiter[1].append(msg)
            waiter[0].set()

    def _on_request(
        self, req: RequestCorrection.Request, res: RequestCorrection.Response
    ) -> RequestCorrection.Response:
        if not self._running.acquire(blocking=False):
            res.accepted = False
            res.message = f"refused: a correction of episode '{self._running_episode}' is still running"
            return res
        try:
            return self._correct(req, res)
        except (BadInput, TimeoutError) as err:
            res.accepted, res.message = False, f"refused: {err}"
            self.get_logger().error(res.message)
            return res
        finally:
            self._running_episode = ""
            self._running.release()

    def _hints(self, req: RequestCorrection.Request, rec: EpisodeRecord):
        contact = up = forward = None
        if req.use_automatic_experts:
            if not self.hints_client.service_is_ready():
                raise BadInput(
                    "automatic experts exist only in simulation, and /sc_mllm/sim/expert_hints "
                    "is not available"
                )
            auto = _wait(
                self.hints_client.call_async(ExpertHints.Request(episode_id=rec.episode_id)),
                self.timeout,
                "the automatic experts",
            )
            if not auto.ok:
                raise BadInput(f"the automatic experts gave no hints: {auto.message}")
            contact = (auto.contact_row, auto.contact_col)
            up, forward = conv.array3(auto.up), conv.array3(auto.forward)
        elif not (req.has_contact_hint or req.has_direction_hint):
            raise BadInput(
                "the request carries no hint: set has_contact_hint and/or has_direction_hint, "
                "or use_automatic_experts"
            )
        # The expert's explicit hints win over the automatic ones.
        if req.has_contact_hint:
            contact = (req.contact_row, req.contact_col)
        if req.has_direction_hint:
            up, forward = conv.array3(req.up), conv.array3(req.forward)
        return resolve_hints(rec, contact, up, forward, feedback=req.feedback)

    def _correct(
        self, req: RequestCorrection.Request, res: RequestCorrection.Response
    ) -> RequestCorrection.Response:
        rec = self.episodes.get(req.episode_id)
        if rec is None:
            raise BadInput(
                f"no episode '{req.episode_id}' to correct"
                if req.episode_id
                else "no episode to correct yet: send a task first"
            )
        self._running_episode = rec.episode_id
        hints = self._hints(req, rec)
        attempt = self._pool.submit(self.server.correct, rec, hints).result()
        rec.attempts.append(attempt)
        self.episodes.set_attempts(rec.episode_id, rec.attempts)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="camera_color_optical_frame")
        pred = conv.prediction_msg(
            attempt, rec.episode_id, rec.task, header, header.frame_id, self.server.model_version
        )
        self.prediction_pub.publish(pred)
        try:
            self.gate.check(attempt.pose)
        except GoalRejected as err:
            res.accepted, res.prediction, res.answer_text = True, pred, attempt.text
            res.message = f"corrected episode {rec.episode_id}, but the goal was rejected, not sent: {err}"
            return res
        self.goal_pub.publish(pred.pose)
        res.accepted, res.corrected_pose, res.prediction = True, pred.pose, pred
        res.answer_text = attempt.text
        res.message = f"corrected episode {rec.episode_id} (attempt {len(rec.attempts)})"
        if req.execute:
            self._execute(rec, pred.pose, res)
        return res

    def _execute(self, rec: EpisodeRecord, target: PoseStamped, res: RequestCorrection.Response) -> None:
        if not self.execute_client.server_is_ready():
            res.message += "; not executed: the executor action /sc_mllm/execute_pose is not available"
            return
        waiter = (threading.Event(), [])
        self._reports[rec.episode_id] = waiter
        try:
            goal = ExecutePose.Goal(
                target=target, primitive=ExecutePose.Goal.PRIMITIVE_PULL, episode_id=rec.episode_id
            )
            handle = _wait(self.execute_client.send_goal_async(goal), self.timeout, "the executor")
            if not handle.accepted:
                res.message += "; not executed: the executor refused the goal (busy)"
                return
            result = _wait(handle.get_result_async(), self.timeout, "the executor").result
            if not result.success:
                res.message += f"; not executed: {result.message}"
                return
            res.executed = True
            if not waiter[0].wait(self.timeout):
                raise TimeoutError(f"the checker did not grade episode {rec.episode_id}")
            res.report = waiter[1][0]
        finally:
            self._reports.pop(rec.episode_id, None)
        verdict = "success" if res.report.success else "failed"
        res.message += f"; executed and graded: {verdict} ({res.report.answer_text})"
        if res.report.success:
            self._store_sample(rec, res)

    def _store_sample(self, rec: EpisodeRecord, res: RequestCorrection.Response) -> None:
        sample = StoredSample.from_attempt(rec, rec.attempts[-1])
        self.samples.add(sample)
        self.sample_pub.publish(
            CorrectionSample(
                header=res.prediction.header,
                sample_id=sample.sample_id,
                episode_id=rec.episode_id,
                task=rec.task,
                corrected=res.prediction,
            )
        )
        res.message += f"; stored as sample {sample.sample_id}"

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def main(args: list[str] | None = None) -> None:
    console_main(CorrectionNode)
