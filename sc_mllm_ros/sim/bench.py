"""``sc-mllm bench sim``: scenes per second, render ms per frame, physics steps per second, pull s."""

from __future__ import annotations

import argparse
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenes", type=int, default=18, help="scenes to build (cycled over all categories)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=50, help="frames rendered per measurement")
    parser.add_argument("--steps", type=int, default=5000, help="physics steps per measurement")


def run(args: argparse.Namespace) -> int:
    import mujoco

    from sc_mllm_ros.sim import PullWorld, sample_scene, SEEN_CATEGORIES, UNSEEN_CATEGORIES

    if args.scenes < 1 or args.frames < 1 or args.steps < 1:
        raise ValueError("--scenes, --frames and --steps must be >= 1")
    cats = [(c, "train") for c in SEEN_CATEGORIES] + [(c, "test_unseen") for c in UNSEEN_CATEGORIES]
    build, execute, successes = [], [], 0
    for i in range(args.scenes):
        category, split = cats[i % len(cats)]
        t = time.perf_counter()
        world = PullWorld(sample_scene(i, split, category), args.image_size)
        build.append(time.perf_counter() - t)
        t = time.perf_counter()
        successes += world.execute(world.ground_truth.pose).success
        execute.append(time.perf_counter() - t)
        if i < args.scenes - 1:
            world.close()

    render = {}
    for mode in ("rgb", "depth", "segmentation"):
        t = time.perf_counter()
        for _ in range(args.frames):
            world._render(mode)
        render[mode] = (time.perf_counter() - t) / args.frames * 1000
    world.reset()
    t = time.perf_counter()
    for _ in range(args.steps):
        mujoco.mj_step(world.model, world.data)
    steps_per_s = args.steps / (time.perf_counter() - t)
    world.close()

    print(f"sim benchmark ({args.scenes} scenes, {args.image_size}x{args.image_size} px, one process)")
    b, e = np.mean(build), np.mean(execute)
    print(f"  scene build + ground truth : {b * 1000:7.1f} ms  ({1 / b:.1f} scenes/s)")
    print(f"  pull execution (GT pose)   : {e * 1000:7.1f} ms  ({successes}/{args.scenes} succeeded)")
    print(f"  scenes/s incl. one pull    : {1 / (b + e):7.1f}")
    for mode, ms in render.items():
        print(f"  render {mode:13s}       : {ms:7.2f} ms/frame")
    print(f"  physics                    : {steps_per_s:9.0f} steps/s (dt {world.model.opt.timestep} s)")
    return 0
