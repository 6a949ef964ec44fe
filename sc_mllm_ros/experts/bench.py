"""Expert benchmark: hint latency, position-network training speed, rotation error vs depth noise.

Run as ``python -m sc_mllm_ros.experts.bench`` (``add_arguments``/``run`` like the other ``sc-mllm bench``
targets).  Synthetic planes with a known normal stand in for scenes, so nothing here needs the simulator.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from sc_mllm_ros.geometry import CameraIntrinsics


def plane_depth(normal: np.ndarray, point: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """Depth image (metres) of the plane through ``point`` with ``normal``, camera optical frame."""
    rows, cols = np.mgrid[0 : intr.height, 0 : intr.width]
    ray = np.stack([(cols - intr.cx) / intr.fx, (rows - intr.cy) / intr.fy, np.ones(rows.shape)], axis=-1)
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    return (np.dot(point, normal) / (ray @ normal)).astype(np.float32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", default=None, help="position-expert folder (default: shipped, else random)"
    )
    parser.add_argument("--image-size", type=int, default=224, help="camera resolution of the test frames")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--train-steps", type=int, default=10, help="timed training steps (batch 16, 112 px)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    import torch

    from sc_mllm_ros.experts import DEFAULT_EXPERTS, Experts, PositionExpert, PositionNet, PositionNetConfig
    from sc_mllm_ros.experts.metrics import latency_ms, rotation_error_deg
    from sc_mllm_ros.experts.training import AffordanceData, PositionTrainConfig, train_position_net

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1 or args.train_steps < 1:
        raise ValueError("--repeats and --train-steps must be >= 1")
    weights = args.weights or DEFAULT_EXPERTS
    try:
        position = PositionExpert.from_pretrained(weights)
        source = str(weights)
    except FileNotFoundError:
        position, source = PositionExpert(PositionNet(PositionNetConfig())), "random init (same cost)"
    experts = Experts(position)
    rng = np.random.default_rng(0)
    s = args.image_size
    intr = CameraIntrinsics.from_fov(45.0, s, s)
    normal = np.array([0.3, 0.1, -1.0]) / np.linalg.norm([0.3, 0.1, -1.0])
    depth = plane_depth(normal, np.array([0.0, 0.0, 1.0]), intr)
    depth += rng.normal(0.0, 0.003, depth.shape).astype(np.float32)
    rgb = rng.integers(0, 255, (s, s, 3), dtype=np.uint8)
    pixel = (s / 2, s / 2)
    print(f"torch threads: {torch.get_num_threads()}; weights: {source}; frames {s}x{s}")
    rows = {
        "position (U-Net + selection)": latency_ms(lambda: position.hint(rgb, depth, "drawer"), args.repeats),
        "rotation (plane fit)": latency_ms(lambda: experts.rotation.fit(depth, intr, pixel), args.repeats),
        "both (Experts.hints)": latency_ms(
            lambda: experts.hints(rgb, depth, intr, "pull the drawer"), args.repeats
        ),
    }
    print(f"{'per hint':32s} {'median ms':>10s} {'p90 ms':>8s}")
    for name, r in rows.items():
        print(f"{name:32s} {r['median_ms']:10.1f} {r['p90_ms']:8.1f}")

    cfg = PositionNetConfig()
    data = AffordanceData.encode(((rgb, depth, "drawer", depth < np.median(depth)) for _ in range(16)), cfg)
    net = PositionNet(cfg)
    stats = train_position_net(net, data, PositionTrainConfig(steps=args.train_steps), progress=False)
    print(f"training: {stats['steps_per_s']:.2f} steps/s at batch 16, {cfg.image_size} px")

    print(f"{'depth noise mm':>14s} {'dropout':>8s} {'rotation error deg (median, 20 fits)':>38s}")
    for noise in (0.0, 0.002, 0.004, 0.008):
        for drop in (0.0, 0.3):
            errs = []
            for _ in range(20):
                n = normal + rng.normal(0.0, 0.3, 3) * np.array([1.0, 1.0, 0.0])
                n /= np.linalg.norm(n)
                d = plane_depth(n, np.array([0.0, 0.0, 1.0]), intr)
                d += rng.normal(0.0, noise, d.shape).astype(np.float32)
                d[rng.random(d.shape) < drop] = np.nan
                errs.append(rotation_error_deg(experts.rotation.fit(d, intr, pixel).up, n))
            print(f"{1e3 * noise:14.0f} {drop:8.1f} {np.median(errs):38.2f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m sc_mllm_ros.experts.bench", description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
