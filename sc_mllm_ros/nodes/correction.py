"""The correction node of the model host: the ``/request_correction`` expert-feedback service.

Builds the correction prompt from the expert's hints (the request's, or the automatic RGB-D experts' on
the episode's recorded frame), re-predicts and answers with the corrected pose. With ``execute``, it
answers once the arm has accepted the goal; the verdict follows on ``sc_mllm/failure_report``, and a
correction the checker accepts is stored durably and announced to the learner on
``sc_mllm/correction_sample``. One correction is answered at a time; a second request meanwhile is refused.

A person corrects by clicking: a point on ``/clicked_point`` (rviz's Publish Point tool, any frame tf2
knows) is projected into the latest episode's image and becomes the contact hint of that episode's
failed attempt, optionally with the rotation expert's orientation at that point; the correction then runs
as a request would. Each graded attempt is also summarised as text on ``sc_mllm/failure_text`` (rviz has
no display for a custom message).
"""

from __future__ import annotations

from concurrent.futures import Future
import threading
from typing import TYPE_CHECKING

from geometry_msgs.msg import PointStamped
import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import String

from sc_mllm_msgs.msg import CorrectionSample, FailureReport
from sc_mllm_msgs.srv import RequestCorrection
from sc_mllm_ros import names
from sc_mllm_ros.episode.loop import conclude, Verdict
from sc_mllm_ros.episode.record import BadInput, EpisodeRecord
from sc_mllm_ros.episode.safety import GoalRejected
from sc_mllm_ros.episode.serving import Hints, resolve_hints
from sc_mllm_ros.geometry import project
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.expert_hints import to_pixel
from sc_mllm_ros.nodes.qos import EVENTS_QOS
from sc_mllm_ros.nodes.runtime import declare
from sc_mllm_ros.nodes.safety_gate import lookup

if TYPE_CHECKING:
    from sc_mllm_ros.nodes.model_host import ModelHost


class CorrectionNode(Node):
    def __init__(self, host: ModelHost, **kwargs) -> None:
        super().__init__("sc_mllm_correction", **kwargs)
        self.host = host
        self._running = threading.Lock()
        self._running_episode = ""
        # episodes whose executed correction awaits its verdict: a second correction would race its record
        self._pending: set[str] = set()
        self.sample_pub = self.create_publisher(CorrectionSample, names.CORRECTION_SAMPLE, EVENTS_QOS)
        self.create_service(
            RequestCorrection,
            names.REQUEST_CORRECTION,
            self._on_request,
            callback_group=ReentrantCallbackGroup(),
        )
        self.click_rotation = declare(
            self,
            "click_rotation_expert",
            True,
            "a clicked contact takes the rotation expert's orientation there",
        )
        self.click_execute = declare(self, "click_execute", True, "execute the correction a click asks for")
        self.create_subscription(PointStamped, names.CLICKED_POINT, self._on_click, 10)
        self.text_pub = self.create_publisher(String, names.FAILURE_TEXT, EVENTS_QOS)
        self.create_subscription(FailureReport, names.FAILURE_REPORT, self._on_report, EVENTS_QOS)

    def _on_report(self, msg: FailureReport) -> None:
        verdict = "success" if msg.success else "FAILED"
        self.text_pub.publish(
            String(data=f"episode {msg.episode_id} attempt {msg.attempt}: {verdict}. {msg.answer_text}")
        )

    # -- a person's click --------------------------------------------------------------------------------
    def _on_click(self, msg: PointStamped) -> None:
        # Projection, the rotation expert and the model run on the host's workers, not here.
        self.host.queue(self._correct_click, msg)

    def click_contact(self, msg: PointStamped, rec: EpisodeRecord) -> tuple[int, int]:
        """The pixel of ``rec``'s image that the clicked point projects to; BadInput if none."""
        frame = msg.header.frame_id or conv.OPTICAL_FRAME
        p = np.array([msg.point.x, msg.point.y, msg.point.z, 1.0])
        if frame != conv.OPTICAL_FRAME:
            try:
                p = lookup(self.host.gate.buffer, conv.OPTICAL_FRAME, frame) @ p
            except GoalRejected as err:
                raise BadInput(f"the clicked point's frame is unknown: {err}") from err
        intr = rec.frame.intrinsics
        try:
            row, col = project(p[:3], intr)
        except ValueError as err:
            raise BadInput(f"the clicked point is not in the camera's view: {err}") from err
        contact = to_pixel((row, col))
        if not (0 <= contact[0] < intr.height and 0 <= contact[1] < intr.width):
            raise BadInput(
                f"the clicked point projects to pixel {contact}, outside episode {rec.episode_id}'s "
                f"{intr.width}x{intr.height} image"
            )
        return contact

    def _correct_click(self, msg: PointStamped) -> RequestCorrection.Response | None:
        """A clicked point as the contact hint of the latest episode's failed attempt (episode worker)."""
        res = RequestCorrection.Response()
        try:
            rec = self.host.episodes.get()
            if rec is None or rec.last is None or rec.last.success is not False:
                raise BadInput("no failed episode to correct: the latest episode has no failed attempt")
            contact = self.click_contact(msg, rec)
            req = RequestCorrection.Request(
                episode_id=rec.episode_id,
                feedback=f"a person clicked the contact at pixel {contact}",
                has_contact_hint=True,
                contact_row=contact[0],
                contact_col=contact[1],
                execute=self.click_execute,
            )
            if self.click_rotation:
                up, forward = self.host.call_model(self.host.experts.up_forward_at, rec, contact).result(
                    timeout=self.host.timeout
                )
                req.has_direction_hint, req.up, req.forward = True, conv.vector3(up), conv.vector3(forward)
        except (BadInput, TimeoutError) as err:
            self.host.error(self, f"clicked point refused: {err}")
            return None
        res = self._on_request(req, res)
        if res.accepted:
            self.get_logger().info(f"clicked correction: {res.message}")
        else:
            self.host.error(self, f"clicked correction {res.message}")
        return res

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

    def _hints(self, req: RequestCorrection.Request, rec: EpisodeRecord) -> Hints:
        contact = up = forward = None
        if req.use_automatic_experts:
            auto = self.host.experts.ask(rec)
            contact, up, forward = to_pixel(auto.pixel), auto.up, auto.forward
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
        host = self.host
        rec = host.episodes.get(req.episode_id)
        if rec is None:
            raise BadInput(
                f"no episode '{req.episode_id}' to correct"
                if req.episode_id
                else "no episode to correct yet: send a task first"
            )
        if rec.episode_id in self._pending or host.running_episode == rec.episode_id:
            raise BadInput(f"episode {rec.episode_id} is still executing; ask again once it is graded")
        self._running_episode = rec.episode_id
        hints = self._hints(req, rec)
        attempt = host.call_model(host.server.correct, rec, hints).result(timeout=host.timeout)
        rec.attempts.append(attempt)
        host.episodes.set_attempts(rec.episode_id, rec.attempts)
        res.accepted, res.answer_text, res.attempt = True, attempt.text, len(rec.attempts) - 1
        message = f"corrected episode {rec.episode_id} (attempt {res.attempt})"
        if not req.execute:
            res.prediction, rejected = host.policy.release(rec, attempt)
            res.corrected_pose = res.prediction.pose
            res.message = (
                f"{message}, but the goal was rejected, not sent: {rejected}" if rejected else message
            )
            return res
        execution = host.arm.send(rec, attempt)
        res.executed = execution.accepted.result(timeout=host.timeout)
        res.prediction, res.corrected_pose = execution.prediction, execution.prediction.pose
        if not res.executed:
            res.message = f"{message}; not executed: {execution.outcome.result().message}"
            self._conclude(rec, attempt, execution.outcome)
            return res
        # The verdict follows on the failure report; this answer does not wait for it.
        self._pending.add(rec.episode_id)
        execution.outcome.add_done_callback(lambda f: host.call_model(self._conclude, rec, attempt, f))
        res.message = f"{message}; executing, the verdict follows on {names.FAILURE_REPORT}"
        return res

    def _conclude(self, rec: EpisodeRecord, attempt, outcome: Future) -> None:
        """Grade the executed correction as the loop does, record it, and learn it if it succeeded."""
        try:
            step = conclude(rec, attempt, outcome.result(), self.host.checker)
            self.host.episodes.set_attempts(rec.episode_id, rec.attempts)
            if step.verdict is Verdict.SUCCESS:
                self.host.learn(rec, attempt)
        finally:
            self._pending.discard(rec.episode_id)
