"""Does online learning stall serving? Answer latency alone and during an online update.

The learner trains its own model on its own, nicer thread (as the learner node does); the serving model
answers meanwhile. Both share the CPU, so answers may slow down, but they must keep coming.
"""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np

from sc_mllm_ros.episode.learning import lower_thread_priority


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
        lower_thread_priority()
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
