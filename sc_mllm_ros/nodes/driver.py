"""A blocking client of the whole graph, in the style of nav2_simple_commander: what demos and tests drive.

Its subscriptions run on the executor's threads; its methods block the caller (never a callback)
until the graph answers.
"""

from __future__ import annotations

from collections.abc import Callable
import threading
import time

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from sc_mllm_msgs.msg import AdapterVersion, FailureReport, PosePrediction
from sc_mllm_msgs.srv import RequestCorrection
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS, SENSOR_QOS


class GraphClient(Node):
    def __init__(self, name: str = "sc_mllm_driver", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self._cv = threading.Condition()
        self.predictions: list[PosePrediction] = []
        self.reports: list[FailureReport] = []
        self.versions: list[AdapterVersion] = []
        self.errors: list[str] = []
        self.frames = 0
        group = ReentrantCallbackGroup()
        self.task_pub = self.create_publisher(String, "/sc_mllm/task", 10)
        for msg_type, topic, store, qos in (
            (PosePrediction, "/sc_mllm/prediction", self.predictions, EVENTS_QOS),
            (FailureReport, "/sc_mllm/failure_report", self.reports, EVENTS_QOS),
            (AdapterVersion, "/sc_mllm/adapter_version", self.versions, LATCHED_QOS),
        ):
            self.create_subscription(
                msg_type, topic, lambda m, s=store: self._add(s, m), qos, callback_group=group
            )
        self.create_subscription(
            String,
            "/sc_mllm/errors",
            lambda m: self._add(self.errors, m.data),
            EVENTS_QOS,
            callback_group=group,
        )
        self.create_subscription(
            Image, "/camera/color/image_raw", self._on_frame, SENSOR_QOS, callback_group=group
        )
        self.correction = self.create_client(RequestCorrection, "/request_correction", callback_group=group)
        self.scene_client = self.create_client(Trigger, "/sc_mllm/sim/scene", callback_group=group)
        self.next_scene_client = self.create_client(Trigger, "/sc_mllm/sim/next_scene", callback_group=group)
        self.pause_client = self.create_client(SetBool, "/sc_mllm/pause", callback_group=group)

    def _add(self, store: list, item) -> None:
        with self._cv:
            store.append(item)
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

    def call(self, client, request, timeout: float = 60.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} is not available")
        future = client.call_async(request)
        return self.wait_for(future.done, timeout, f"{client.srv_name} to answer") and future.result()

    def wait_for_frames(self, count: int = 1, timeout: float = 30.0) -> None:
        start = self.frames
        self.wait_for(lambda: self.frames >= start + count, timeout, "camera frames")

    def run_task(self, task: str, timeout: float = 120.0) -> tuple[PosePrediction, FailureReport | None, str]:
        """Send a task; the policy's prediction, the checker's report and the error that stopped it, if any.

        The report is None when the goal never reached the arm (the safety envelope refused it).
        """
        n_pred, n_err = len(self.predictions), len(self.errors)

        def answered():
            if len(self.errors) > n_err and f"task '{task}'" in self.errors[-1]:
                raise RuntimeError(self.errors[-1])
            return next(
                (p for p in self.predictions[n_pred:] if p.task == task and p.prompt_family == "pose"), None
            )

        self.task_pub.publish(String(data=task))
        pred = self.wait_for(answered, timeout, f"a prediction for '{task}'")

        def graded():
            report = next((r for r in self.reports if r.episode_id == pred.episode_id), None)
            error = next((e for e in self.errors[n_err:] if pred.episode_id in e), None)
            return (report, "") if report is not None else (None, error) if error else None

        report, error = self.wait_for(graded, timeout, f"the report of episode {pred.episode_id}")
        return pred, report, error

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

    def wait_for_version(self, newer_than: int, timeout: float = 120.0) -> AdapterVersion:
        return self.wait_for(
            lambda: next((v for v in self.versions if v.version > newer_than), None),
            timeout,
            f"an adapter version newer than {newer_than}",
        )

    def scene_object(self, timeout: float = 60.0) -> str:
        """The object of the scene on the embedded arm."""
        return self.call(self.scene_client, Trigger.Request(), timeout).message

    def next_scene(self, timeout: float = 60.0) -> str:
        res = self.call(self.next_scene_client, Trigger.Request(), timeout)
        if not res.success:
            raise RuntimeError(f"next scene refused: {res.message}")
        return res.message


def _attempt_summary(pred: PosePrediction, report: FailureReport | None, note: str) -> dict:
    return {
        "family": pred.prompt_family,
        "answer": pred.answer_text,
        "contact": [pred.contact_row, pred.contact_col],
        "adapter_version": pred.adapter_version,
        "latency_s": round(pred.latency_s, 3),
        "executed": report is not None,
        "success": bool(report.success) if report is not None else None,
        "report": report.answer_text if report is not None else "",
        "note": note,
    }


def run_episodes(client: GraphClient, task: str, episodes: int, rounds: int, timeout: float = 120.0) -> dict:
    """The closed loop over ``episodes`` scenes: task, grade, corrections, learning, the task again.

    ``task`` may name the scene's object as ``{object}``. Returns a JSON-ready summary.
    """
    client.wait_for_frames(1, timeout)
    summary: dict = {"episodes": []}
    for i in range(episodes):
        obj = client.scene_object() if i == 0 else client.next_scene()
        client.wait_for_frames(2, timeout)
        text = task.format(object=obj)
        pred, report, error = client.run_task(text, timeout)
        ep = {
            "scene_object": obj,
            "task": text,
            "episode_id": pred.episode_id,
            "attempts": [_attempt_summary(pred, report, error)],
        }
        success = report is not None and report.success
        ep["first_try_success"] = success
        version = max((v.version for v in client.versions), default=0)
        for _ in range(rounds if not success else 0):
            res = client.request_correction(pred.episode_id, automatic=True, execute=True, timeout=timeout)
            if not res.accepted:
                ep["attempts"].append({"family": "correction", "note": res.message})
                break
            ep["attempts"].append(
                _attempt_summary(res.prediction, res.report if res.executed else None, res.message)
            )
            success = res.executed and res.report.success
            if success:
                learned = client.wait_for_version(version, timeout)
                ep["learned_adapter_version"] = learned.version
                # The same task again: the policy must answer with the adapter it just learned.
                again, again_report, again_error = client.run_task(text, timeout)
                ep["after_learning"] = _attempt_summary(again, again_report, again_error)
                break
        ep["success"] = success
        summary["episodes"].append(ep)
    eps = summary["episodes"]
    summary["totals"] = {
        "episodes": len(eps),
        "first_try_successes": sum(e["first_try_success"] for e in eps),
        "successes_with_correction": sum(e["success"] for e in eps),
        "corrections": sum(len(e["attempts"]) - 1 for e in eps),
        "adapter_version": max((v.version for v in client.versions), default=0),
    }
    return summary
