"""The model host's automatic experts: RGB-D in, hints out, on any cell (no simulator, no ground truth).

:class:`RgbdExperts` runs :class:`~sc_mllm_ros.experts.Experts` on an episode's recorded RGB-D frame and
camera_info, on the host's model worker (never on an executor thread). It serves ``sc_mllm/expert_hints``
and gives ``/request_correction`` (``use_automatic_experts``) and ``sc_mllm/run_episode`` their hints; the
candidates of the latest hints, numbered, are drawn on ``sc_mllm/expert_image`` (latched).
"""

from __future__ import annotations

from dataclasses import dataclass
import threading
from typing import TYPE_CHECKING

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sc_mllm_msgs.srv import ExpertHints
from sc_mllm_ros import names
from sc_mllm_ros.episode.record import BadInput, EpisodeRecord
from sc_mllm_ros.episode.render import annotate_candidates
from sc_mllm_ros.episode.serving import expert_hints, Hints
from sc_mllm_ros.experts import ExpertError, Experts
from sc_mllm_ros.experts import Hints as ExpertOutput
from sc_mllm_ros.geometry import to_pixel
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.qos import LATCHED_QOS
from sc_mllm_ros.nodes.runtime import declare

if TYPE_CHECKING:
    from sc_mllm_ros.nodes.model_host import ModelHost


class RgbdExperts:
    """The position and rotation experts of :mod:`sc_mllm_ros.experts` inside the model host."""

    def __init__(self, host: ModelHost) -> None:
        self.host = host
        self.path = declare(
            host, "experts_path", "", "position-expert weights directory (empty: the shipped weights)"
        )
        self._experts: Experts | None = None
        self._load = threading.Lock()
        # The latest candidates, numbered, for a person choosing one (rviz, `sc-mllm correct --candidate`).
        self.image_pub = host.create_publisher(Image, names.EXPERT_IMAGE, LATCHED_QOS)
        host.create_service(
            ExpertHints, names.EXPERT_HINTS, self._on_request, callback_group=ReentrantCallbackGroup()
        )

    @property
    def experts(self) -> Experts:
        """The experts, loaded on first use (a missing weights directory is a refusal, not a crash)."""
        with self._load:
            if self._experts is None:
                try:
                    self._experts = (
                        Experts.from_pretrained(self.path) if self.path else Experts.from_pretrained()
                    )
                except (FileNotFoundError, OSError, ValueError) as err:
                    raise BadInput(f"the automatic experts could not be loaded: {err}") from err
            return self._experts

    def compute(self, record: EpisodeRecord, k: int | None = None) -> ExpertOutput:
        """The experts' hints on ``record``'s frame; run on the model worker."""
        f = record.frame
        try:
            hints = self.experts.hints(f.rgb, f.depth, f.intrinsics, record.task, k)
        except ExpertError as err:
            raise BadInput(
                f"the automatic experts gave no hints for episode {record.episode_id}: {err}"
            ) from err
        header = Header(stamp=self.host.get_clock().now().to_msg(), frame_id=conv.OPTICAL_FRAME)
        image = annotate_candidates(f.rgb, [to_pixel(p) for p in hints.candidate_pixels], min_size=224)
        self.image_pub.publish(conv.image_msg(image, "rgb8", header))
        return hints

    def ask(self, record: EpisodeRecord, k: int | None = None) -> ExpertOutput:
        """:meth:`compute` on the model worker, waited for by the calling (non-executor) thread."""
        return self.host.call_model(self.compute, record, k).result(timeout=self.host.timeout)

    def up_forward_at(self, record: EpisodeRecord, contact: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The rotation expert's orientation at ``contact`` (a person's click); run on the model worker."""
        f = record.frame
        try:
            plane = self.experts.rotation.fit(f.depth, f.intrinsics, (float(contact[0]), float(contact[1])))
        except ExpertError as err:
            raise BadInput(f"the rotation expert gave no orientation at {contact}: {err}") from err
        return plane.up, plane.forward

    def choose(self, position: bool, rotation: bool) -> ChosenExperts:
        return ChosenExperts(self, position, rotation)

    def _on_request(self, req: ExpertHints.Request, res: ExpertHints.Response) -> ExpertHints.Response:
        rec = self.host.episodes.get(req.episode_id)
        if rec is None:
            res.ok, res.message = (
                False,
                (f"no episode '{req.episode_id}'" if req.episode_id else "no episode yet: send a task first"),
            )
            return res
        res.episode_id = rec.episode_id
        try:
            hints = self.ask(rec, int(req.k) or None)
        except (BadInput, TimeoutError) as err:
            res.ok, res.message = False, str(err)
            self.host.error(self.host, res.message)
            return res
        res.ok = True
        res.contact_row, res.contact_col = to_pixel(hints.pixel)
        res.up, res.forward = conv.vector3(hints.up), conv.vector3(hints.forward)
        cands = [to_pixel(p) for p in hints.candidate_pixels]
        res.candidate_rows, res.candidate_cols = [c[0] for c in cands], [c[1] for c in cands]
        res.candidate_scores = [float(s) for s in hints.candidate_scores]
        res.rotation_confidence = float(hints.rotation_confidence)
        res.message = (
            f"{len(cands)} candidate(s) for '{rec.task}' in episode {rec.episode_id}; "
            f"best {cands[0]} (pull success {hints.position_confidence:.2f})"
        )
        return res


@dataclass(frozen=True)
class ChosenExperts:
    """The loop's experts: hints of the experts a goal asked for; the rest come from the last attempt."""

    experts: RgbdExperts
    position: bool
    rotation: bool

    def hints(self, record: EpisodeRecord) -> Hints:
        return expert_hints(record, self.experts.ask(record), self.position, self.rotation)
