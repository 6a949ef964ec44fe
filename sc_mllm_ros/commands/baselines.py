"""``sc-mllm baselines``: fixed policies on the same scenes per split, with the world's acceptance gates."""

from __future__ import annotations

import argparse
import json
import os
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=200, help="scenes per split")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", required=True, help="directory for baselines.json and baselines.md")
    parser.add_argument("--workers", type=int, default=2, help="processes (default: 2, both cores)")
    parser.add_argument("--mean-scenes", type=int, default=60, help="training scenes behind noun_mean_pose")
    # Every policy sees the same scenes whatever else runs, so one policy can be measured on its own.
    parser.add_argument("--policies", nargs="+", default=None, metavar="POLICY", help="default: all")


def run(args: argparse.Namespace) -> int:
    from sc_mllm_ros.evaluation.baselines import markdown, POLICIES, run_baselines

    if args.episodes < 1 or args.workers < 1 or args.mean_scenes < 1:
        raise ValueError("--episodes, --workers and --mean-scenes must be >= 1")
    unknown = sorted(set(args.policies or ()) - set(POLICIES))
    if unknown:
        raise ValueError(f"unknown policies {unknown}; choose from {sorted(POLICIES)}")
    start = time.perf_counter()
    doc = run_baselines(
        args.episodes, args.seed, workers=args.workers, mean_scenes=args.mean_scenes, policies=args.policies
    )
    doc["elapsed_s"] = round(time.perf_counter() - start, 1)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "baselines.json"), "w") as f:
        json.dump(doc, f, indent=2)
    text = markdown(doc)
    with open(os.path.join(args.out, "baselines.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"({doc['elapsed_s']} s)")
    return 0 if all(g["passed"] for g in doc["gates"]) else 1
