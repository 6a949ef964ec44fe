"""``sc-mllm bringup``: the whole graph in one process on the embedded arm.

The same node classes as the console scripts, under one MultiThreadedExecutor. With ``--demo`` it runs
the closed loop and exits: a task goes in, the arm acts, the checker grades, a failed attempt is
corrected through ``/request_correction`` by the automatic experts, the learner updates, and the policy
answers again with the new adapter; a JSON summary and the debug images (PNG) go to ``--out``.
Without ``--demo`` it serves the graph until Ctrl-C (tasks on ``/sc_mllm/task``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import time

DEFAULT_OUT = "runs/bringup"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true", help="run the closed loop for --episodes, then exit")
    p.add_argument("--task", default="pull the {object}", help="task string; {object} is the scene's object")
    p.add_argument("--episodes", type=int, default=1, help="scenes to run (one task each)")
    p.add_argument("--rounds", type=int, default=3, help="correction rounds per failed task")
    p.add_argument(
        "--out",
        "--output-dir",
        dest="out",
        default=DEFAULT_OUT,
        help="summary.json, debug PNGs, the stores and adapter checkpoints",
    )
    p.add_argument(
        "--model",
        default="",
        help="SC-MLLM checkpoint directory (default: the shipped model if present, else random init)",
    )
    p.add_argument("--config", default=None, help="ROS 2 params file (default: config/sc_mllm.yaml)")
    p.add_argument("--scene-seed", type=int, default=0, help="seed of the first scene")
    p.add_argument("--split", default="train", choices=("train", "test_seen", "test_unseen"))
    p.add_argument("--category", default="", help="pin the object category")
    p.add_argument("--timeout", type=float, default=120.0, help="longest wait for any step (s)")


def run(args: argparse.Namespace) -> int:
    import rclpy

    from sc_mllm_ros.episode.render import save_debug_images
    from sc_mllm_ros.nodes.driver import run_episodes
    from sc_mllm_ros.nodes.policy import PolicyNode
    from sc_mllm_ros.nodes.runtime import load_model, resolve_model_path
    from sc_mllm_ros.nodes.system import compose, DEFAULT_CONFIG

    if args.episodes < 1 or args.rounds < 0:
        raise SystemExit("--episodes must be >= 1 and --rounds >= 0")
    model_path = resolve_model_path(args.model or "")
    if not model_path:
        print(
            "no trained model given or shipped: a randomly initialised one answers (train one: sc-mllm train)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    system = None
    try:
        executor_params = {
            "scene_seed": args.scene_seed,
            "scene_split": args.split,
            "scene_category": args.category,
        }
        system = compose(
            load_model(model_path),
            out / "data",
            args.config or DEFAULT_CONFIG,
            {"sc_mllm_sim": executor_params},
            model_version=model_path or "random-init",
        )
        if not args.demo:
            print(
                "serving the graph: tasks on /sc_mllm/task, corrections on /request_correction; Ctrl-C stops"
            )
            while rclpy.ok():
                time.sleep(1.0)
            return 0
        t0 = time.perf_counter()
        summary = run_episodes(system.client, args.task, args.episodes, args.rounds, args.timeout)
        summary["model"] = model_path or "random-init"
        summary["wall_s"] = round(time.perf_counter() - t0, 2)
        summary["images"] = save_debug_images(system.node(PolicyNode).episodes, summary, out)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary["totals"], indent=1))
        print(f"summary and {len(summary['images'])} debug images in {out}/")
        return 0
    finally:
        if system is not None:
            system.shutdown()
        rclpy.try_shutdown()
