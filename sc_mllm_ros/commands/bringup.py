"""``sc-mllm bringup``: the whole graph in one process on the embedded arm.

The model host, the arm and the learner (the launch file's three processes) under one
MultiThreadedExecutor. With ``--demo`` it runs the closed loop through the ``/sc_mllm/run_episode``
action and exits: the policy answers, the arm acts, the checker grades, a failure is corrected with the
automatic experts' hints, the learner learns the successful correction, and the same task runs again
with the new adapter; a JSON summary and the debug images (PNG) go to ``--out``. Without ``--demo`` it
serves the graph until Ctrl-C (tasks on ``/sc_mllm/task``, episodes on ``/sc_mllm/run_episode``).
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


def _episode(client, task: str, rounds: int, timeout: float) -> dict:
    res = client.run_episode(task, rounds, timeout=timeout)
    return {
        "task": task,
        "episode_id": res.episode_id,
        "status": res.status.value,
        "success": res.success,
        "message": res.message,
        "attempts": [
            {
                "correction": f.correction,
                "verdict": f.verdict,
                "cause": cause,
                "answer": f.answer_text,
                "adapter_version": f.adapter_version,
            }
            for f, cause in zip(res.feedback, res.causes)
        ],
    }


def run_demo(client, task: str, episodes: int, rounds: int, timeout: float) -> dict:
    """The closed loop over ``episodes`` scenes: an episode, learning from its correction, the task again.

    ``task`` may name the scene's object as ``{object}``. Returns a JSON-ready summary.
    """
    client.wait_for_frames(1, timeout)
    summary: dict = {"episodes": []}
    for i in range(episodes):
        obj = client.scene_object() if i == 0 else client.next_scene()
        client.wait_for_frames(2, timeout)
        version = client.adapter_version
        ep = {"scene_object": obj, **_episode(client, task.format(object=obj), rounds, timeout)}
        ep["first_try_success"] = bool(ep["attempts"]) and ep["attempts"][0]["verdict"] == "success"
        if ep["success"] and len(ep["attempts"]) > 1:
            ep["learned_adapter_version"] = client.wait_for_version(version, timeout).version
            client.wait_for_frames(2, timeout)
            # The same task again: the policy must answer with the adapter it just learned.
            ep["after_learning"] = _episode(client, ep["task"], 0, timeout)
        summary["episodes"].append(ep)
    eps = summary["episodes"]
    # The graph has no ground truth: these count the checker's verdicts (sc-mllm eval scores the truth).
    summary["totals"] = {
        "episodes": len(eps),
        "first_try_successes": sum(e["first_try_success"] for e in eps),
        "successes_after_corrections": sum(e["success"] for e in eps),
        "corrections": sum(max(len(e["attempts"]) - 1, 0) for e in eps),
        "adapter_version": client.adapter_version,
    }
    return summary


def run(args: argparse.Namespace) -> int:
    import rclpy

    from sc_mllm_ros.episode.render import save_debug_images
    from sc_mllm_ros.model import resolve_pretrained
    from sc_mllm_ros.nodes.runtime import load_model, model_version
    from sc_mllm_ros.nodes.system import compose, DEFAULT_CONFIG

    if args.episodes < 1 or args.rounds < 0:
        raise SystemExit("--episodes must be >= 1 and --rounds >= 0")
    if resolve_pretrained(args.model) is None:
        print(
            "no trained model given or shipped: a randomly initialised one answers (train one: sc-mllm train)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    system = None
    try:
        sim_params = {
            "scene_seed": args.scene_seed,
            "scene_split": args.split,
            "scene_category": args.category,
        }
        system = compose(
            load_model(args.model),
            out / "data",
            args.config or DEFAULT_CONFIG,
            {"sc_mllm_sim": sim_params},
            model_version=model_version(args.model),
        )
        if not args.demo:
            print(
                "serving the graph: tasks on /sc_mllm/task, episodes on /sc_mllm/run_episode, "
                "corrections on /request_correction; Ctrl-C stops"
            )
            while rclpy.ok():
                time.sleep(1.0)
            return 0
        t0 = time.perf_counter()
        summary = run_demo(system.client, args.task, args.episodes, args.rounds, args.timeout)
        summary["model"] = model_version(args.model)
        summary["wall_s"] = round(time.perf_counter() - t0, 2)
        episodes = [
            *summary["episodes"],
            *(e["after_learning"] for e in summary["episodes"] if "after_learning" in e),
        ]
        summary["images"] = save_debug_images(system.host.episodes, {"episodes": episodes}, out)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary["totals"], indent=1))
        print(f"summary and {len(summary['images'])} debug images in {out}/")
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if system is not None:
            system.shutdown()
        rclpy.try_shutdown()
