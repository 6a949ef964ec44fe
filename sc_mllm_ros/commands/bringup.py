"""``sc-mllm bringup``: the whole graph in one process on the embedded arm, running the closed loop.

A task goes in, the arm acts, the checker grades, a failed attempt is corrected through
``/request_correction`` by the automatic experts, the learner updates, and the policy answers again
with the new adapter. A JSON summary and the debug images (PNG) are written to ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import time

DEFAULT_OUT = "runs/bringup"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="pull the {object}", help="task string; {object} is the scene's object")
    p.add_argument("--episodes", type=int, default=1, help="scenes to run (one task each)")
    p.add_argument("--rounds", type=int, default=3, help="correction rounds per failed task")
    p.add_argument("--output-dir", default=DEFAULT_OUT, help="summary.json, debug PNGs and the stores")
    p.add_argument("--model", default="", help="SC-MLLM checkpoint directory (empty: random init)")
    p.add_argument("--config", default=None, help="ROS 2 params file (default: config/sc_mllm.yaml)")
    p.add_argument("--scene-seed", type=int, default=0, help="seed of the first scene")
    p.add_argument("--split", default="train", choices=("train", "test_seen", "test_unseen"))
    p.add_argument("--category", default="", help="pin the object category")
    p.add_argument("--timeout", type=float, default=120.0, help="longest wait for any step (s)")
    p.add_argument("--serve", action="store_true", help="keep serving after the episodes until Ctrl-C")


def run(args: argparse.Namespace) -> int:
    import rclpy

    from sc_mllm_ros.episode.render import save_debug_images
    from sc_mllm_ros.nodes.driver import run_episodes
    from sc_mllm_ros.nodes.policy import PolicyNode
    from sc_mllm_ros.nodes.runtime import load_model
    from sc_mllm_ros.nodes.system import DEFAULT_CONFIG, compose

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    system = None
    try:
        overrides = {
            "sc_mllm_executor": {
                "scene_seed": args.scene_seed,
                "scene_split": args.split,
                "scene_category": args.category,
            }
        }
        system = compose(
            load_model(args.model),
            out / "data",
            args.config or DEFAULT_CONFIG,
            overrides,
            model_version=args.model or "random-init",
        )
        t0 = time.perf_counter()
        summary = run_episodes(system.client, args.task, args.episodes, args.rounds, args.timeout)
        summary["wall_s"] = round(time.perf_counter() - t0, 2)
        summary["images"] = save_debug_images(system.node(PolicyNode).episodes, summary, out)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary["totals"], indent=1))
        print(f"summary and debug images in {out}/")
        if args.serve:
            print("serving; Ctrl-C to stop")
            while rclpy.ok():
                time.sleep(1.0)
        return 0
    finally:
        if system is not None:
            system.shutdown()
        rclpy.try_shutdown()
