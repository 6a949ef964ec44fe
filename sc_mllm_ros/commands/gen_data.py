"""``sc-mllm gen-data``: generate the simulated dataset (pose, failure, correction) in sc_mllm_dataset/1."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--num", type=int, required=True, help="training records (test splits: --test-num each)"
    )
    parser.add_argument("--out", required=True, help="output directory (must not hold a dataset yet)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (default: 2, both cores)")
    parser.add_argument("--image-size", type=int, default=224, help="square camera resolution in pixels")
    parser.add_argument(
        "--test-num", type=int, default=None, help="records per test split (default 5%% of --num)"
    )
    parser.add_argument("--shard-size", type=int, default=1000, help="records per JSONL shard")
    parser.add_argument(
        "--policy",
        default=None,
        help="a model folder: record its own attempts on training scenes (first try + corrections) instead",
    )
    parser.add_argument(
        "--max-corrections", type=int, default=2, help="with --policy: corrections per episode"
    )
    parser.add_argument(
        "--experts",
        default=None,
        help="RGB-D experts' weights for the correction hints (default: shipped)",
    )


def run(args: argparse.Namespace) -> int:
    from sc_mllm_ros.sim.dataset import GenConfig, generate, scene_records

    cfg = GenConfig(
        num=args.num,
        out=args.out,
        seed=args.seed,
        workers=args.workers,
        image_size=args.image_size,
        test_num=args.test_num,
        shard_size=args.shard_size,
        experts=args.experts,
        policy=args.policy,
        max_corrections=args.max_corrections,
    )
    records = scene_records
    if args.policy:
        from sc_mllm_ros.episode.rollouts import policy_records as records
    start = time.perf_counter()
    manifest = generate(cfg, records)
    elapsed = time.perf_counter() - start
    total = sum(sum(c.values()) for c in manifest["counts"].values())
    print(f"wrote {total} records to {args.out} in {elapsed:.1f} s ({total / elapsed:.1f} records/s)")
    for split, counts in manifest["counts"].items():
        print(f"  {split:12s} {counts}  failure causes {manifest['causes'][split]}")
    return 0
