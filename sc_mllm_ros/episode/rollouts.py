"""The policy's own attempts as training records (DAgger-style rounds for the checker and the corrections).

``sc-mllm gen-data --policy MODEL`` rolls a model out on training scenes of the embedded world through the
one episode loop (:func:`~sc_mllm_ros.episode.loop.run_episode`): its first answer, then corrections with the
RGB-D experts. Every attempt becomes a "failure" record labelled by the simulator (what the checker must learn
to see on the policy's own distribution of near misses), every correction a "correction" record whose answer
is the executed correction where it succeeded, else the ground-truth pose. The ground truth only labels: the
loop itself runs on what a cell has (the gate is the ground truth here so that failures get corrected and
recorded whatever the checker of this round says).

:class:`SimArm`, the embedded world as the loop's arm, is the evaluation's arm too.

Records are in ``sc_mllm_dataset/1`` (see :mod:`sc_mllm_ros.sim.dataset`), deterministic by seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sc_mllm_ros.episode.loop import ArmOutcome, Gate, ModelChecker, run_episode, Verdict
from sc_mllm_ros.episode.record import Attempt, BadInput, EpisodeRecord, Frame
from sc_mllm_ros.episode.serving import FrameExperts, ModelServer
from sc_mllm_ros.geometry import project
from sc_mllm_ros.sim.dataset import (
    _experts,
    _images,
    _vec,
    GenConfig,
    outcome_label,
    scene_fields,
    scene_seed,
)
from sc_mllm_ros.sim.labels import in_mask
from sc_mllm_ros.sim.objects import categories_for, sample_scene
from sc_mllm_ros.sim.world import ExecutionResult, PullWorld

_SERVERS: dict[str, ModelServer] = {}


def _server(path: str) -> ModelServer:
    """The policy, loaded once per worker process."""
    if path not in _SERVERS:
        import torch

        from sc_mllm_ros.model import SCMLLM

        torch.set_num_threads(1)  # one worker per core
        _SERVERS[path] = ModelServer(SCMLLM.from_pretrained(path))  # "": the shipped model
    return _SERVERS[path]


@dataclass
class SimArm:
    """The embedded world as the loop's arm; it knows the ground truth of every attempt and keeps each result.

    An unreachable pose is not completed (the executor's verdict: the checker is not asked).
    """

    world: PullWorld
    results: list[ExecutionResult] = field(default_factory=list)  # the end depth goes into the records

    def execute(self, record: EpisodeRecord, attempt: Attempt) -> ArmOutcome:
        res = self.world.execute(attempt.pose)
        self.results.append(res)
        return ArmOutcome(
            completed=not res.unreachable,
            message=res.message,
            ee_pose=res.ee_pose,
            end_rgb=res.end_obs.rgb,
            intrinsics=self.world.intrinsics,
            success=res.success,
            true_cause=Verdict.UNREACHABLE.value if res.unreachable else outcome_label(res),
        )


def policy_records(
    split: str, index: int, cfg: GenConfig
) -> tuple[list[dict], dict[str, tuple[bytes, bytes]], str | None]:
    """The records of the policy's episode on scene ``index`` of ``split`` (as ``scene_records``)."""
    cats = categories_for(split)
    category = cats[index % len(cats)]
    sseed = scene_seed(cfg.seed, split, index)
    scene = sample_scene(sseed, split, category)
    server = _server(cfg.policy)
    records: list[dict] = []
    images: dict[str, tuple[bytes, bytes]] = {}
    with PullWorld(scene, cfg.image_size) as world:
        obs = world.reset()
        gt = world.ground_truth
        if not in_mask(gt.affordance_mask, gt.contact):
            return [], {}, None
        stem = f"{split}-{index:06d}"
        base = {**scene_fields(split, category, scene, sseed, obs, gt), "source": "policy"}

        def add(name: str, family: str, imgs: tuple[bytes, bytes], **extra) -> None:
            rid = f"{stem}-{name}"
            rgb, depth = f"{split}/images/{rid}_rgb.png", f"{split}/images/{rid}_depth.png"
            records.append({"id": rid, "family": family, **base, "rgb": rgb, "depth": depth, **extra})
            images[rid] = imgs

        initial = _images(obs.rgb, obs.depth)
        add("pose", "pose", initial)
        record = EpisodeRecord(
            stem,
            f"pull the {scene.object_name}",
            scene.object_name,
            Frame(obs.rgb, obs.depth, obs.intrinsics),
        )
        arm = SimArm(world)
        experts = FrameExperts(_experts(cfg.experts))
        try:
            run_episode(
                record, server, arm, ModelChecker(server), experts, cfg.max_corrections, gate=Gate.ORACLE
            )
        except BadInput:  # an answer with no depth under it: nothing more to record from this scene
            pass
        first_label = None
        for i, (attempt, res) in enumerate(zip(record.attempts, arm.results)):
            label = outcome_label(res)
            if label is not None:
                ee = res.ee_pose
                add(
                    f"attempt{i}",
                    "failure",
                    _images(res.end_obs.rgb, res.end_obs.depth),
                    ee_contact=_vec(project(ee.position, obs.intrinsics)),
                    ee_up=_vec(ee.up),
                    ee_forward=_vec(ee.forward),
                    cause=label,
                    initial_rgb=f"{split}/images/{stem}-pose_rgb.png",
                    attempt=i,
                )
                first_label = first_label or label
            if attempt.family == "correction" and attempt.hint_contact is not None and not res.unreachable:
                good = bool(res.success)
                add(
                    f"correction{i}",
                    "correction",
                    initial,
                    contact=_vec(attempt.contact) if good else base["contact"],
                    hint_contact=_vec(attempt.hint_contact),
                    hint_up=_vec(np.asarray(attempt.hint_up)),
                    hint_forward=_vec(np.asarray(attempt.hint_forward)),
                    hint_succeeded=good,
                )
    return records, images, first_label
