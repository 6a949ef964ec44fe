"""``sc-mllm bench system``: the ROS graph's overheads, measured side by side in one run.

* policy latency (task and latest image in -> goal out, through DDS) against the raw model call, with the
  simulated cell in its own process rendering at 10 Hz, as ``franka_bringup.launch.py`` runs the graph;
* correction latency (``/request_correction`` with the automatic experts) against the raw model call, and
  against the same library calls without ROS (the experts' hints, then the model's correction);
* one learner update (adapter fine-tuning + EMA) on a batch of corrected samples;
* policy latency while the learner trains on its own thread, against idle.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sc_mllm_ros.assets import DEFAULT_MODEL

    parser.add_argument(
        "--model", default=str(DEFAULT_MODEL), help="model directory (default: the shipped one)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="measurements per row")
    parser.add_argument("--learner-batch", type=int, default=8, help="corrected samples per learner update")


GRAPH_GOAL = 1.15  # what the graph may add to a model call
LEARNING_GOAL = 1.2  # serving latency while the learner trains, against idle
SETTLE_S = (0.05, 0.15)  # idle time before each measured call, not timed


def _stats(xs: list[float]) -> tuple[float, float]:
    return float(np.percentile(xs, 50)), float(np.percentile(xs, 95))


def _accepted_scene(server, tries: int = 50):
    """The first training scene whose pose answer the default safety envelope accepts (the normal path).

    A rejected goal takes another path (no goal, markers or arm), which would not be what the graph adds.
    """
    from sc_mllm_ros.episode.record import Frame
    from sc_mllm_ros.episode.safety import GoalRejected, SafetyEnvelope
    from sc_mllm_ros.sim import PullWorld, sample_scene

    for seed in range(tries):
        with PullWorld(sample_scene(seed, split="train")) as world:
            obs, gt, obj = world.reset(), world.ground_truth, world.object_name
            try:
                att = server.predict(Frame(obs.rgb, obs.depth, obs.intrinsics), obj)
                SafetyEnvelope().check(att.pose, world.camera_pose)
            except GoalRejected:
                continue
            return seed, obs, gt, obj
    raise RuntimeError(f"the safety envelope rejected the answers on the first {tries} training scenes")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from std_msgs.msg import String

    from sc_mllm_ros.episode.bench import serving_during_learning
    from sc_mllm_ros.episode.record import EpisodeRecord, Frame
    from sc_mllm_ros.episode.serving import FrameExperts, ModelServer
    from sc_mllm_ros.experts import Experts
    from sc_mllm_ros.model import OnlineLearner, TrainingSample
    from sc_mllm_ros.model.bench import goal_line, machine_load, UPDATE_GOAL_S
    from sc_mllm_ros.nodes.runtime import load_model
    from sc_mllm_ros.nodes.system import compose, DEFAULT_CONFIG

    model = load_model(args.model)
    server = ModelServer(model)
    seed, obs, gt, obj = _accepted_scene(server)
    rows: dict[str, list[float]] = {}
    pauses = random.Random(0)

    def timed(name: str, fn) -> None:
        fn()  # warm-up
        rows[name] = []
        for _ in range(args.repeats):
            # Latency of one request on a settled graph: the previous one's tail (its goal markers and debug
            # image, published after the goal) is not this one's cost; tasks come seconds apart in an episode.
            # A random pause samples every phase of the camera's 10 Hz frames.
            time.sleep(pauses.uniform(*SETTLE_S))
            t0 = time.perf_counter()
            fn()
            rows[name].append(time.perf_counter() - t0)

    timed("model.predict_pose (raw)", lambda: model.predict_pose(obs.rgb, obj))
    timed("model.correct (raw)", lambda: model.correct(obs.rgb, obj, gt.contact, gt.up, gt.forward))
    experts = FrameExperts(Experts.from_pretrained())
    record = EpisodeRecord("bench", f"pull the {obj}", obj, Frame(obs.rgb, obs.depth, obs.intrinsics))
    record.attempts.append(server.predict(record.frame, obj))
    timed("experts' hints + correction (raw, no ROS)", lambda: server.correct(record, experts.hints(record)))

    samples = [
        TrainingSample(
            "correction",
            obs.rgb,
            obj,
            gt.contact,
            gt.up,
            gt.forward,
            hint_contact=gt.contact,
            hint_up=gt.up,
            hint_forward=gt.forward,
        )
        for _ in range(args.learner_batch)
    ]
    learner = OnlineLearner(model.clone())
    timed(f"learner update ({args.learner_batch} samples)", lambda: learner.update(samples))
    # In process, without the transport: answers served by the ModelServer during one update.
    serving = serving_during_learning(server, learner, samples, args.repeats, obs.rgb, obj)

    # The graph as the launch file runs it: the simulated cell in its own process (its rendering at 10 Hz
    # holds its own interpreter), the model host and the learner here; a private DDS domain.
    domain = random.SystemRandom().randrange(1, 200)
    rclpy.init(domain_id=domain)
    system = None
    sim = subprocess.Popen(
        [sys.executable, "-c", "from sc_mllm_ros.nodes.sim_node import main; main()", "--ros-args"]
        + ["--params-file", str(DEFAULT_CONFIG), "-p", f"scene_seed:={seed}"],
        env={**os.environ, "ROS_DOMAIN_ID": str(domain)},
        stdout=subprocess.DEVNULL,
    )
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            overrides = {"sc_mllm_policy": {"auto_execute": False}}
            system = compose(model, data_dir, DEFAULT_CONFIG, overrides, model_version=args.model, arm=False)
            client = system.client
            client.wait_for_frames(2, 60.0)
            task = f"pull the {client.scene_object()}"
            last = {}

            def policy() -> None:
                # The newest prediction object, not the count: the client keeps only the last KEEP.
                before = client.predictions[-1] if client.predictions else None
                client.task_pub.publish(String(data=task))

                def newest():
                    pred = client.predictions[-1] if client.predictions else None
                    return pred is not before and pred

                last["pred"] = client.wait_for(newest, 60.0, "a prediction")

            timed("policy: task in -> goal out (idle)", policy)
            episode = last["pred"].episode_id
            timed(
                "/request_correction (automatic experts, no execution)",
                lambda: client.request_correction(episode, automatic=True, execute=False, timeout=60.0),
            )
            stop = threading.Event()

            def train_forever() -> None:
                while not stop.is_set():
                    learner.update(samples)

            trainer = threading.Thread(target=train_forever, daemon=True)
            trainer.start()
            try:
                timed("policy: task in -> goal out (learner training)", policy)
            finally:
                stop.set()
                trainer.join()
    finally:
        if system is not None:
            system.shutdown()
        rclpy.try_shutdown()
        sim.terminate()
        sim.wait(30)

    print(f"sc-mllm bench system ({args.repeats} runs each, model {args.model}, train scene {seed})")
    print(f"{'measurement':58s} {'p50 ms':>9s} {'p95 ms':>9s}")
    for name, xs in rows.items():
        p50, p95 = _stats(xs)
        print(f"{name:58s} {1000 * p50:9.1f} {1000 * p95:9.1f}")
    med = {k: _stats(v)[0] for k, v in rows.items()}
    raw, idle = med["model.predict_pose (raw)"], med["policy: task in -> goal out (idle)"]
    print(f"policy overhead ratio (graph / raw model call):        {idle / raw:.2f}x")
    corr = med["/request_correction (automatic experts, no execution)"]
    print(f"correction overhead ratio (service / raw model call):  {corr / med['model.correct (raw)']:.2f}x")
    same = med["experts' hints + correction (raw, no ROS)"]
    print(f"correction overhead ratio (service / same calls, no ROS): {corr / same:.2f}x")
    busy = med["policy: task in -> goal out (learner training)"]
    print(f"policy latency while learning / idle:                  {busy / idle:.2f}x")
    print(
        f"model server alone / during one update: {serving['answer_ms_alone']:.0f} ms / "
        f"{serving['answer_ms_during_update']:.0f} ms ({serving['answers_during_update']} answers "
        f"served during the {serving['update_s']:.1f} s update)"
    )
    graph_note = "the graph's Python executor, DDS hops and the durable episode write (README, Benchmarks)"
    print(f"goals (issue 14), {machine_load()}:")
    print(goal_line("graph / raw predict_pose", idle / raw, GRAPH_GOAL, "x", graph_note))
    print(goal_line("/request_correction / raw correct", corr / med["model.correct (raw)"], GRAPH_GOAL, "x"))
    print(goal_line("policy latency while learning / idle", busy / idle, LEARNING_GOAL, "x"))
    update = med[f"learner update ({args.learner_batch} samples)"]
    print(goal_line(f"online update of {args.learner_batch} samples", update, UPDATE_GOAL_S, "s"))
    return 0
