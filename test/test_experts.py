"""The RGB-D experts: plane fits on synthetic depth, the position network's contract, training, selection."""

import argparse
import ast
import json
import os
from pathlib import Path
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from sc_mllm_ros.experts import (
    DEFAULT_EXPERTS,
    ExpertError,
    Experts,
    NoDepthError,
    PositionExpert,
    PositionNet,
    PositionNetConfig,
    RotationExpert,
    select_points,
)
from sc_mllm_ros.experts.bench import plane_depth
from sc_mllm_ros.experts.metrics import evaluate_experts, rotation_error_deg
from sc_mllm_ros.experts.position import phrase_tokens
from sc_mllm_ros.experts.training import AffordanceData, PositionTrainConfig, train_position_net
from sc_mllm_ros.geometry import angle_between_deg, CameraIntrinsics, in_mask, pixel_to_answer

EXPERTS_DIR = Path(__file__).resolve().parents[1] / "sc_mllm_ros" / "experts"
TINY = PositionNetConfig(image_size=32, widths=(8, 16, 16, 16), text_buckets=64, text_dim=8, nms_radius_px=4)


def tilted_normal(deg: float) -> np.ndarray:
    """An outward normal (facing the camera) tilted ``deg`` from the optical axis, to the right and down."""
    t = np.deg2rad(deg)
    n = np.array([np.sin(t), 0.3 * np.sin(t), -np.cos(t)])
    return n / np.linalg.norm(n)


@pytest.fixture
def intr() -> CameraIntrinsics:
    return CameraIntrinsics.from_fov(45.0, 112, 112)


# -- the rotation expert ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tilt", [0.0, 35.0, 60.0])
def test_plane_normal_of_noiseless_patch(intr, tilt):
    normal = tilted_normal(tilt)
    fit = RotationExpert().fit(plane_depth(normal, [0.0, 0.0, 1.0], intr), intr, (60.0, 50.0))
    assert angle_between_deg(fit.normal, normal) < 1.0
    assert rotation_error_deg(fit.up, normal) < 1.0
    # up points into the surface (away from the camera); forward is perpendicular and roughly "camera up"
    assert np.dot(fit.up, [(50 - intr.cx) / intr.fx, (60 - intr.cy) / intr.fy, 1.0]) > 0
    assert abs(np.dot(fit.up, fit.forward)) < 1e-9
    assert fit.forward[1] < 0
    assert fit.confidence > 0.95
    # the contact lifted onto the plane lies on the plane
    assert abs(np.dot(fit.point - np.array([0.0, 0.0, 1.0]), normal)) < 1e-6


def test_plane_with_noise_and_dropout_stays_close_but_is_less_confident(intr):
    normal = tilted_normal(25.0)
    clean = plane_depth(normal, [0.0, 0.0, 1.0], intr)
    rng = np.random.default_rng(0)
    noisy = clean + rng.normal(0.0, 0.004, clean.shape).astype(np.float32)
    noisy[rng.random(clean.shape) < 0.3] = np.nan
    expert = RotationExpert()
    exact, fit = expert.fit(clean, intr, (56.0, 56.0)), expert.fit(noisy, intr, (56.0, 56.0))
    assert angle_between_deg(fit.normal, normal) < 6.0
    assert fit.confidence < exact.confidence
    assert fit.valid_ratio < 0.85


def test_all_nan_window_is_refused_with_a_clear_error(intr):
    depth = plane_depth([0.0, 0.0, -1.0], [0.0, 0.0, 1.0], intr)
    depth[40:80, 40:80] = np.nan
    with pytest.raises(NoDepthError, match="hole"):
        RotationExpert().fit(depth, intr, (60.0, 60.0))
    # a hole at the pixel itself is bridged by its neighbours
    depth = plane_depth([0.0, 0.0, -1.0], [0.0, 0.0, 1.0], intr)
    depth[59:62, 59:62] = np.nan
    assert RotationExpert().fit(depth, intr, (60.0, 60.0)).normal[2] < -0.99


def test_sparse_depth_widens_the_window_instead_of_refusing(intr):
    normal = tilted_normal(30.0)
    depth = plane_depth(normal, [0.0, 0.0, 1.0], intr)
    depth[np.random.default_rng(3).random(depth.shape) < 0.93] = np.nan
    fit = RotationExpert().fit(depth, intr, (56.0, 56.0))
    assert angle_between_deg(fit.normal, normal) < 2.0
    assert fit.confidence < 0.15  # says how little of the window it saw


def test_edge_keeps_the_surface_under_the_pixel_and_lowers_confidence(intr):
    """Half the window is a far wall: the fit follows the near part and says the window is mixed."""
    normal = tilted_normal(20.0)
    depth = plane_depth(normal, [0.0, 0.0, 1.0], intr)
    depth[:, 58:] = 1.6
    fit = RotationExpert().fit(depth, intr, (56.0, 55.0))
    assert angle_between_deg(fit.normal, normal) < 3.0
    assert fit.confidence < 0.8


def test_a_protruding_handle_lowers_confidence(intr):
    depth = plane_depth([0.0, 0.0, -1.0], [0.0, 0.0, 1.0], intr)
    base = RotationExpert().fit(depth, intr, (56.0, 56.0))
    depth[53:59, 45:68] -= 0.04  # a bar handle 4 cm proud of the door
    fit = RotationExpert().fit(depth, intr, (50.0, 56.0))
    assert fit.normal[2] < -0.99
    assert fit.confidence < base.confidence - 0.1


def test_pixel_outside_the_image_is_refused(intr):
    depth = plane_depth([0.0, 0.0, -1.0], [0.0, 0.0, 1.0], intr)
    with pytest.raises(ExpertError, match="outside"):
        RotationExpert().fit(depth, intr, (200.0, 5.0))


# -- the position network ---------------------------------------------------------------------------------


def test_position_net_contract():
    net = PositionNet(PositionNetConfig())
    assert 300_000 < sum(p.numel() for p in net.parameters()) < 800_000
    tokens, offsets = net.batch_tokens(["top drawer", "oven door"])
    out = net(torch.zeros(2, 5, 112, 112), tokens, offsets)
    assert out.shape == (2, 112, 112)
    assert phrase_tokens("Top  drawer", 1024) == phrase_tokens("top drawer", 1024)
    with pytest.raises(ExpertError, match="empty"):
        phrase_tokens("  ", 1024)
    with pytest.raises(ValueError, match="divide"):
        PositionNet(PositionNetConfig(image_size=100))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = PositionNet(TINY)
    torch.nn.init.normal_(net.film.weight)  # FiLM starts at zero; make the round trip cover it
    net.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    loaded = PositionNet.from_pretrained(tmp_path)
    assert loaded.config == TINY
    x = torch.randn(1, 5, 32, 32)
    tokens, offsets = net.batch_tokens(["box lid"])
    torch.testing.assert_close(loaded.eval()(x, tokens, offsets), net.eval()(x, tokens, offsets))
    with pytest.raises(FileNotFoundError, match="train-experts"):
        PositionExpert.from_pretrained(tmp_path / "missing")


def rectangle_scene(rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey wall at ~1 m with one bright rectangle on it: the rectangle is the affordance."""
    rgb = np.full((size, size, 3), 60, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
    depth = np.full((size, size), rng.uniform(0.8, 1.2), np.float32)
    h, w = rng.integers(5, 10, size=2)
    r, c = rng.integers(0, size - h), rng.integers(0, size - w)
    mask = np.zeros((size, size), bool)
    mask[r : r + h, c : c + w] = True
    rgb[mask] = 230
    return rgb, depth, mask


def test_tiny_training_puts_the_hint_inside_the_bright_rectangle():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = [rectangle_scene(rng) for _ in range(64)]
    data = AffordanceData.encode(((rgb, d, "handle", m) for rgb, d, m in scenes), TINY)
    net = PositionNet(TINY)
    expert = PositionExpert(net)
    held_out = [rectangle_scene(rng) for _ in range(20)]

    def hits() -> int:
        return sum(in_mask(m, expert.hint(rgb, d, "handle").pixels[0]) for rgb, d, m in held_out)

    before = hits()
    stats = train_position_net(
        net, data, PositionTrainConfig(steps=150, batch_size=8, lr=5e-3), progress=False
    )
    after = hits()
    assert stats["steps_per_s"] > 0
    assert after >= 18 and after > before


def two_handles_scene(rng: np.random.Generator, size: int = 32):
    """A red and a blue handle on random sides; the phrase names the one that is the affordance."""
    rgb = np.full((size, size, 3), 60, np.uint8)
    masks = []
    for k, colour in enumerate([(230, 40, 40), (40, 40, 230)]):
        m = np.zeros((size, size), bool)
        r, c = rng.integers(0, size - 8), rng.integers(0, 12) + 16 * k
        m[r : r + 8, c : c + 6] = True
        rgb[m] = colour
        masks.append(m)
    if rng.random() < 0.5:  # either side, so the position alone does not tell which is which
        rgb, masks = rgb[:, ::-1].copy(), [m[:, ::-1].copy() for m in masks]
    i = int(rng.integers(2))
    return rgb, np.ones((size, size), np.float32), ["red handle", "blue handle"][i], masks[i]


def test_the_part_phrase_selects_which_part_the_hint_lands_on():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = AffordanceData.encode((two_handles_scene(rng) for _ in range(128)), TINY)
    net = PositionNet(TINY)
    train_position_net(net, data, PositionTrainConfig(steps=200, batch_size=8, lr=5e-3), progress=False)
    expert = PositionExpert(net)
    held_out = [two_handles_scene(rng) for _ in range(40)]
    hits = sum(in_mask(m, expert.hint(rgb, d, p).pixels[0]) for rgb, d, p, m in held_out)
    assert hits >= 36  # chance (either handle) is about 20 of 40


def test_select_points_returns_k_separated_peaks_best_first():
    score = np.zeros((40, 40))
    score[10, 10], score[11, 11], score[30, 30], score[10, 30] = 1.0, 0.9, 0.8, 0.5
    peaks = select_points(score, k=3, radius=5, sigma=0.0)
    assert [(r, c) for r, c, _ in peaks] == [(10, 10), (30, 30), (10, 30)]
    assert [s for *_, s in peaks] == sorted((s for *_, s in peaks), reverse=True)
    smooth = select_points(np.random.default_rng(0).random((40, 40)), k=6, radius=8, sigma=1.5)
    assert len(smooth) == 6
    for i, (r1, c1, _) in enumerate(smooth):
        for r2, c2, _ in smooth[i + 1 :]:
            assert np.hypot(r1 - r2, c1 - c2) >= 8
    allowed = np.ones((40, 40), bool)
    allowed[5:16, 5:16] = False
    assert (10, 10) not in [(r, c) for r, c, _ in select_points(score, 3, 5, 0.0, allowed)]
    with pytest.raises(ValueError):
        select_points(score, 0, 5, 0.0)


# -- the facade and the measurements ----------------------------------------------------------------------


def test_hints_contract_and_clear_errors(intr):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    depth = plane_depth(tilted_normal(10.0), [0.0, 0.0, 1.0], intr)
    experts = Experts(PositionExpert(PositionNet(PositionNetConfig(top_k=4))))
    h = experts.hints(rgb, depth, (intr.fx, intr.fy, intr.cx, intr.cy), "pull the top drawer")
    assert h.contact == h.candidates[0] == pixel_to_answer(h.pixel, (112, 112))
    assert len(h.candidates) == len(h.candidate_pixels) == len(h.candidate_scores) == 4
    assert all(0 <= v < 336 for p in h.candidates for v in p)
    assert abs(np.linalg.norm(h.up) - 1) < 1e-9 and abs(np.dot(h.up, h.forward)) < 1e-9
    assert rotation_error_deg(h.up, tilted_normal(10.0)) < 1.0
    assert 0.0 <= h.position_confidence <= 1.0 and h.rotation_confidence > 0.9
    with pytest.raises(ExpertError, match="aligned"):
        experts.hints(rgb, depth[:100], intr, "pull the drawer")
    with pytest.raises(ExpertError, match="uint8"):
        experts.hints(rgb.astype(float), depth, intr, "pull the drawer")
    with pytest.raises(ExpertError, match="intrinsics"):
        experts.hints(rgb, depth, (0.0, 1.0, 2.0), "pull the drawer")
    with pytest.raises(ExpertError, match="no valid pixel"):
        experts.hints(rgb, np.full_like(depth, np.nan), intr, "pull the drawer")
    with pytest.raises(ValueError, match="task"):
        experts.hints(rgb, depth, intr, "")


def test_evaluate_experts_counts_hits_and_refusals(intr):
    rgb = np.zeros((112, 112, 3), np.uint8)
    normal = tilted_normal(15.0)
    depth = plane_depth(normal, [0.0, 0.0, 1.0], intr)
    everywhere, nowhere = np.ones((112, 112), bool), np.zeros((112, 112), bool)
    sample = {"rgb": rgb, "depth": depth, "intrinsics": intr, "task": "pull the drawer", "normal_cam": normal}
    samples = [{**sample, "affordance": everywhere}, {**sample, "affordance": nowhere}]
    samples.append({**sample, "affordance": everywhere, "depth": np.full_like(depth, np.nan)})
    r = evaluate_experts(Experts(PositionExpert(PositionNet(PositionNetConfig()))), samples)
    assert r["samples"] == 3 and r["refused"] == 1
    assert r["position_hit"] == pytest.approx(1 / 3)
    assert r["rotation_error_deg_median"] < 1.0 and r["rotation_within_limit"] == pytest.approx(2 / 3)


# -- the training command ---------------------------------------------------------------------------------


def test_train_experts_command_learns_only_from_the_train_split(tmp_path, monkeypatch, intr):
    asked = []

    def expert_samples(split, n, seed):
        asked.append(split)
        rng = np.random.default_rng(seed)
        for _ in range(n):
            rgb, _, mask = rectangle_scene(rng, 112)
            yield {
                "rgb": rgb,
                "depth": plane_depth([0.0, 0.0, -1.0], [0.0, 0.0, 1.0], intr),
                "intrinsics": (intr.fx, intr.fy, intr.cx, intr.cy),
                "task": "pull the drawer",
                "part_name": "drawer",
                "affordance": mask,
                "part_mask": mask,
                "normal_cam": np.array([0.0, 0.0, -1.0]),
            }

    fake = types.ModuleType("sc_mllm_ros.sim.affordance")
    fake.expert_samples = expert_samples
    monkeypatch.setitem(sys.modules, "sc_mllm_ros.sim.affordance", fake)
    from sc_mllm_ros.cli import main

    argv = ["train-experts", "--out", str(tmp_path), "--samples", "4", "--eval-samples", "2", "--steps", "2"]
    assert main([*argv, "--batch-size", "2", "--no-progress"]) == 0
    assert asked[0] == "train" and set(asked[1:]) == {"test_seen", "test_unseen"}
    record = json.loads((tmp_path / "training.json").read_text())
    assert record["train_samples"] == 4 and set(record["held_out"]) == {"test_seen", "test_unseen"}
    assert "train-experts" in (tmp_path / "README.md").read_text()
    assert isinstance(PositionExpert.from_pretrained(tmp_path), PositionExpert)


def test_the_shipped_weights_load_by_default_with_their_card():
    record = json.loads((DEFAULT_EXPERTS / "training.json").read_text())
    assert set(record["held_out"]) == {"test_seen", "test_unseen"}
    assert "train-experts" in (DEFAULT_EXPERTS / "README.md").read_text()
    for path in (None, ""):  # like the SC-MLLM model: an empty path means the shipped weights
        experts = Experts.from_pretrained(path)
        params = sum(p.numel() for p in experts.position.net.parameters())
        assert params == record["parameters"]


# -- no simulator, no ROS ---------------------------------------------------------------------------------

# The model (and with it transformers) too: the hints must start fast on a cell without the policy loaded.
FORBIDDEN = (
    "sc_mllm_ros.sim",
    "sc_mllm_ros.nodes",
    "rclpy",
    "mujoco",
    "sc_mllm_msgs",
    "sc_mllm_ros.model",
    "transformers",
)


def test_experts_never_import_the_simulator_or_ros():
    for path in EXPERTS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            bad = [n for n in names if n.startswith(FORBIDDEN)]
            assert not bad, f"{path.name} imports {bad}"
    # Transitively too: importing the package and running both experts loads none of them.
    code = (
        "import sys, numpy as np\n"
        "from sc_mllm_ros.experts import Experts, PositionExpert, PositionNet, PositionNetConfig\n"
        "from sc_mllm_ros.geometry import CameraIntrinsics\n"
        "rgb, depth = np.zeros((32, 32, 3), np.uint8), np.ones((32, 32), np.float32)\n"
        "experts = Experts(PositionExpert(PositionNet(PositionNetConfig(image_size=32))))\n"
        "experts.hints(rgb, depth, CameraIntrinsics.from_fov(45.0, 32, 32), 'pull the drawer')\n"
        f"print([m for m in sys.modules if m.startswith({FORBIDDEN!r})])\n"
    )
    root = EXPERTS_DIR.parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env
    )
    assert out.stdout.strip() == "[]"


def test_bench_prints_latency_training_speed_and_rotation_error(capsys):
    from sc_mllm_ros.experts import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--image-size", "112", "--repeats", "1", "--train-steps", "1"])) == 0
    out = capsys.readouterr().out
    assert "both (Experts.hints)" in out and "steps/s at batch 16" in out and "rotation error" in out
