"""``sc-mllm bench system``: does online learning stall serving? Answer latency alone and during updates.

The learner trains its own clone of the model on its own thread (as the learner node does); the serving
model answers meanwhile. Both share the CPU, so answers may slow down, but they must keep coming.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np


def serving_during_learning(
    server, learner, samples: list, answers: int, rgb: np.ndarray, object_name: str
) -> dict:
    """Latencies of ``answers`` predictions alone, then while ``learner.update(samples)`` runs in a thread."""
    from sc_mllm_ros.episode.record import Frame
    from sc_mllm_ros.geometry import CameraIntrinsics

    h, w = rgb.shape[:2]
    frame = Frame(rgb, np.full((h, w), 0.8, np.float32), CameraIntrinsics.from_fov(45.0, w, h))

    def answer() -> float:
        t0 = time.perf_counter()
        server.predict(frame, object_name)
        return time.perf_counter() - t0

    answer()  # warm-up: the first answer pays for lazy initialisation
    alone = [answer() for _ in range(answers)]
    done = threading.Event()
    update_s: list[float] = []

    def learn() -> None:
        t0 = time.perf_counter()
        learner.update(samples)
        update_s.append(time.perf_counter() - t0)
        done.set()

    thread = threading.Thread(target=learn, name="bench_learner")
    thread.start()
    during = []
    while not done.is_set():
        during.append(answer())
    thread.join()
    return {
        "answer_ms_alone": 1e3 * statistics.median(alone),
        "answer_ms_during_update": 1e3 * statistics.median(during) if during else float("nan"),
        "answers_during_update": len(during),
        "update_s": update_s[0],
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="", help="SC-MLLM checkpoint directory (empty: random init)")
    p.add_argument("--answers", type=int, default=10, help="answers measured alone")
    p.add_argument("--samples", type=int, default=4, help="training samples per online update")
    p.add_argument("--steps-per-update", type=int, default=4)


def run(args: argparse.Namespace) -> int:
    from sc_mllm_ros.episode.agent import ModelServer
    from sc_mllm_ros.model import OnlineLearner, TrainingSample
    from sc_mllm_ros.nodes.runtime import load_model

    model = load_model(args.model)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    samples = [
        TrainingSample("pose", rgb, "drawer", (50, 60), np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]))
        for _ in range(args.samples)
    ]
    learner = OnlineLearner(model.clone(), steps_per_update=args.steps_per_update)
    r = serving_during_learning(ModelServer(model), learner, samples, args.answers, rgb, "drawer")
    print("| measure | value |\n| --- | --- |")
    print(f"| answer latency, serving alone | {r['answer_ms_alone']:.0f} ms |")
    print(f"| answer latency, during an online update | {r['answer_ms_during_update']:.0f} ms |")
    print(f"| answers served during the update | {r['answers_during_update']} |")
    print(
        f"| online update ({args.samples} samples x {args.steps_per_update} steps) | {r['update_s']:.1f} s |"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m sc_mllm_ros.episode.bench", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
