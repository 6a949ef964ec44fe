"""The loop without ROS: task parsing, frame checks, hints, the durable stores and the safety envelope."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sc_mllm_ros.episode.record import Attempt, BadInput, EpisodeRecord, Frame, parse_task
from sc_mllm_ros.episode.safety import GoalRejected, SafetyEnvelope
from sc_mllm_ros.episode.serving import resolve_hints
from sc_mllm_ros.episode.store import EpisodeStore, SampleStore, StoredSample
from sc_mllm_ros.geometry import CameraIntrinsics, Pose

INTR = CameraIntrinsics.from_fov(45.0, 32, 24)


def frame(h: int = 24, w: int = 32) -> Frame:
    rng = np.random.default_rng(0)
    return Frame(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), np.full((h, w), 0.8, np.float32), INTR)


def attempt(**kw) -> Attempt:
    base = {
        "family": "pose",
        "contact": (5, 6),
        "up": [0.0, 0.0, 1.0],
        "forward": [1.0, 0.0, 0.0],
        "position": [0.0, 0.0, 0.8],
        "quaternion": [0.0, 0.0, 0.0, 1.0],
        "text": "answer",
        "adapter_version": 0,
        "latency_s": 0.1,
    }
    return Attempt(**{**base, **kw})


@pytest.mark.parametrize(
    ("task", "name"),
    [
        ("pull the drawer", "drawer"),
        ("Open the Cabinet Door.", "cabinet door"),
        ("oven_door", "oven door"),
        ("please pull a box lid", "box lid"),
    ],
)
def test_task_names_the_object(task: str, name: str) -> None:
    assert parse_task(task) == name


@pytest.mark.parametrize("task", ["", "   ", "x" * 201, "pull the 42", "pull the drawer; rm -rf /"])
def test_bad_tasks_are_refused_with_a_reason(task: str) -> None:
    with pytest.raises(BadInput, match="task"):
        parse_task(task)


def test_frame_checks() -> None:
    frame().validate()
    f = frame()
    with pytest.raises(BadInput, match="differ in size"):
        Frame(f.rgb, f.depth[:, :-1], INTR).validate()
    with pytest.raises(BadInput, match="empty"):
        Frame(f.rgb[:0], f.depth[:0], INTR).validate()
    with pytest.raises(BadInput, match="uint8"):
        Frame(f.rgb.astype(np.float32), f.depth, INTR).validate()
    with pytest.raises(BadInput, match="camera_info is for"):
        Frame(f.rgb, f.depth, INTR.scaled(64, 48)).validate()


def test_hints_fill_in_from_the_last_attempt_and_refuse_malformed_ones() -> None:
    rec = EpisodeRecord("e1", "pull the drawer", "drawer", frame(), [attempt()])
    h = resolve_hints(rec, contact=(3, 4))
    assert h.contact == (3, 4) and np.allclose(h.up, [0, 0, 1]) and np.allclose(h.forward, [1, 0, 0])
    h = resolve_hints(rec, up=[0, 0, 2], forward=[0, 3, 0])
    assert h.contact == (5, 6) and np.allclose(h.forward, [0, 1, 0])
    for bad, match in (
        ({"contact": (-1, 0)}, "outside"),
        ({"contact": (0, 99)}, "outside"),
        ({"up": [0, 0, 0]}, "not a direction"),
        ({"up": [np.nan, 0, 1]}, "not a direction"),
        ({"up": [1, 0, 0]}, "parallel"),
    ):
        with pytest.raises(BadInput, match=match):
            resolve_hints(rec, **bad)
    with pytest.raises(BadInput, match="no attempt"):
        resolve_hints(EpisodeRecord("e2", "pull the drawer", "drawer", frame()), contact=(1, 1))


def test_episode_store_round_trip_latest_and_updates(tmp_path) -> None:
    store = EpisodeStore(tmp_path / "e.sqlite")
    assert store.get() is None and store.get("nope") is None
    for i in range(3):
        store.add(EpisodeRecord(f"e{i}", "pull the drawer", "drawer", frame(), [attempt(text=f"t{i}")]))
    latest = store.get()
    assert latest.episode_id == "e2" and latest.attempts[0].text == "t2"
    rec = store.get("e1")
    assert np.array_equal(rec.frame.rgb, frame().rgb) and rec.frame.intrinsics == INTR
    rec.attempts.append(attempt(family="correction", hint_contact=(1, 2), success=True, cause="success"))
    store.set_attempts("e1", rec.attempts)
    again = EpisodeStore(tmp_path / "e.sqlite").get("e1")  # another connection, as another process would
    assert [a.family for a in again.attempts] == ["pose", "correction"]
    assert again.attempts[1].hint_contact == (1, 2) and again.attempts[1].success is True


def _write_then_crash(path: str) -> None:
    SampleStore(path).add(
        StoredSample("e1", "drawer", np.zeros((4, 4, 3), np.uint8), (1, 2), [0, 0, 1], [1, 0, 0])
    )
    os._exit(1)  # no close, no cleanup: what a crash leaves


def test_sample_store_keeps_what_was_acknowledged_across_a_crash(tmp_path) -> None:
    path = str(tmp_path / "s.sqlite")
    proc = mp.get_context("spawn").Process(target=_write_then_crash, args=(path,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 1
    store = SampleStore(path)
    [s] = store.unlearned()
    assert s.contact == (1, 2) and s.rgb.shape == (4, 4, 3)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.add(
        StoredSample(
            "e2",
            "drawer",
            np.ones((4, 4, 3), np.uint8),
            (0, 0),
            [0, 0, 1],
            [1, 0, 0],
            hint_contact=(3, 3),
            feedback="lower",
        )
    )
    store.mark_learned([s.sample_id], 1)
    [left] = store.unlearned()
    assert left.episode_id == "e2" and left.hint_contact == (3, 3) and left.feedback == "lower"
    assert len(store) == 2 and len(store.list_all()) == 2


ENVELOPE = SafetyEnvelope(
    box_min=(0.2, -0.5, 0.0), box_max=(0.9, 0.5, 1.0), primitive_offsets=(-0.15, 0.0, -0.2)
)
BASE_FROM_CAMERA = np.eye(4)  # camera at the base: goals are in base coordinates


def pose_at(position, up) -> Pose:
    up = np.asarray(up, float) / np.linalg.norm(up)
    fwd = np.cross(up, [0.0, 1.0, 0.0]) if abs(up[1]) < 0.9 else np.cross(up, [1.0, 0.0, 0.0])
    fwd /= np.linalg.norm(fwd)
    return Pose(np.asarray(position, float), np.column_stack([fwd, np.cross(up, fwd), up]))


def test_envelope_accepts_a_reachable_goal_and_says_why_it_rejects() -> None:
    ENVELOPE.check(pose_at([0.6, 0.0, 0.5], [1.0, 0.0, 0.0]), BASE_FROM_CAMERA)
    ENVELOPE.check(pose_at([0.6, 0.0, 0.4], [0.0, 0.0, -1.0]), BASE_FROM_CAMERA)
    with pytest.raises(GoalRejected, match="goal position .* outside the workspace box"):
        ENVELOPE.check(pose_at([1.5, 0.0, 0.5], [1.0, 0.0, 0.0]), BASE_FROM_CAMERA)
    with pytest.raises(GoalRejected, match="waypoint -0.20 m"):
        ENVELOPE.check(pose_at([0.6, 0.0, 0.82], [0.0, 0.0, -1.0]), BASE_FROM_CAMERA)  # pull ends above
    with pytest.raises(GoalRejected, match="approach direction"):
        ENVELOPE.check(pose_at([0.6, 0.0, 0.5], [0.0, 0.0, 1.0]), BASE_FROM_CAMERA)
    with pytest.raises(GoalRejected, match="non-finite"):
        ENVELOPE.check(Pose(np.array([np.nan, 0, 0]), np.eye(3)), BASE_FROM_CAMERA)
    with pytest.raises(GoalRejected, match="proper rotation"):
        ENVELOPE.check(Pose(np.array([0.6, 0, 0.5]), np.diag([1.0, 1.0, -1.0])), BASE_FROM_CAMERA)


def test_random_goals_never_leave_the_box() -> None:
    rng = np.random.default_rng(7)
    cam = np.eye(4)
    cam[:3, :3] = Rotation.from_euler("xyz", [-120, 0, -90], degrees=True).as_matrix()
    cam[:3, 3] = [0.1, 0.3, 0.8]
    lo, hi = np.array(ENVELOPE.box_min), np.array(ENVELOPE.box_max)
    accepted = 0
    for _ in range(2000):
        goal = Pose(rng.uniform(-1.5, 1.5, 3), Rotation.random(random_state=rng).as_matrix())
        try:
            base = ENVELOPE.check(goal, cam)
        except GoalRejected:
            continue
        accepted += 1
        for offset in ENVELOPE.primitive_offsets:
            p = base.position + offset * base.up
            assert np.all(p >= lo) and np.all(p <= hi)
        assert np.degrees(np.arccos(np.clip(-base.up[2], -1, 1))) <= ENVELOPE.max_approach_angle_deg + 1e-9
        assert np.allclose(base.position, (cam @ np.append(goal.position, 1.0))[:3])
    assert 0 < accepted < 2000  # the sample exercised both outcomes


def test_an_empty_box_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        SafetyEnvelope(box_min=(1, 0, 0), box_max=(0, 1, 1))
