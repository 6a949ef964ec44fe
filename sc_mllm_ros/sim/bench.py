"""``sc-mllm bench sim``: scenes/s, render ms per frame, physics steps/s, pull s, gen-data records/s."""

from __future__ import annotations

import argparse
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenes", type=int, default=18, help="scenes to build (cycled over all categories)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=50, help="frames rendered per measurement")
    parser.add_argument("--steps", type=int, default=5000, help="physics steps per measurement")
    parser.add_argument("--gen-scenes", type=int, default=20, help="training scenes of one gen-data worker")


# The goal for `sc-mllm gen-data`: 20k records in 30 minutes on 2 cores, i.e. per worker of two:
GEN_GOAL_PER_WORKER = 20000 / (30 * 60) / 2


def run(args: argparse.Namespace) -> int:
    import mujoco

    from sc_mllm_ros.sim import PullWorld, sample_scene, SEEN_CATEGORIES, UNSEEN_CATEGORIES
    from sc_mllm_ros.sim.dataset import GenConfig, scene_records

    if min(args.scenes, args.frames, args.steps, args.gen_scenes) < 1:
        raise ValueError("--scenes, --frames, --steps and --gen-scenes must be >= 1")
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

    cfg = GenConfig(num=args.gen_scenes, out="", image_size=args.image_size)
    t = time.perf_counter()
    records = sum(len(scene_records("train", i, cfg)[0]) for i in range(args.gen_scenes))
    gen_rate = records / (time.perf_counter() - t)

    print(f"sim benchmark ({args.scenes} scenes, {args.image_size}x{args.image_size} px, one process)")
    b, e = np.mean(build), np.mean(execute)
    print(f"  scene build + ground truth : {b * 1000:7.1f} ms  ({1 / b:.1f} scenes/s)")
    print(f"  pull execution (GT pose)   : {e * 1000:7.1f} ms  ({successes}/{args.scenes} succeeded)")
    print(f"  scenes/s incl. one pull    : {1 / (b + e):7.1f}")
    for mode, ms in render.items():
        print(f"  render {mode:13s}       : {ms:7.2f} ms/frame")
    print(f"  physics                    : {steps_per_s:9.0f} steps/s (dt {world.model.opt.timestep} s)")
    verdict = "meets" if gen_rate >= GEN_GOAL_PER_WORKER else "MISSES"
    print(
        f"  gen-data, one worker       : {gen_rate:7.1f} records/s ({verdict} the goal of "
        f"{GEN_GOAL_PER_WORKER:.1f}/s per worker: 20k records in 30 min on 2 cores)"
    )
    return 0
