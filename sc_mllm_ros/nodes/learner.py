"""The learner node: fine-tunes the adapter online on successfully corrected samples.

It wakes on ``/sc_mllm/correction_sample``, learns every unlearned sample of the durable store on its
own thread with its own model copy (serving never waits for it), merges with the EMA, writes the
adapter checkpoint atomically and announces it on ``/sc_mllm/adapter_version`` (latched), which the
model host hot-swaps.
"""

from __future__ import annotations

import time

from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from sc_mllm_msgs.msg import AdapterVersion, CorrectionSample
from sc_mllm_ros import names
from sc_mllm_ros.episode.adapters import AdapterStore
from sc_mllm_ros.episode.learning import AdapterRelease, LearnerWorker
from sc_mllm_ros.episode.store import SampleStore
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS
from sc_mllm_ros.nodes.runtime import console_main, data_dir, declare, load_model


class LearnerNode(Node):
    def __init__(self, model=None, samples: SampleStore | None = None, **kwargs) -> None:
        super().__init__("sc_mllm_learner", **kwargs)
        from sc_mllm_ros.model import OnlineLearner

        model_path = declare(self, "model_path", "", "SC-MLLM checkpoint the adapter is learned on")
        root = data_dir(self)
        adapter_dir = root / declare(self, "adapter_subdir", "adapters", "adapter checkpoints under data_dir")
        # The two tunables: a change takes effect from the next update (see _retune).
        lr = declare(self, "lr", 1e-3, "learning rate of the online updates", (1e-7, 1.0), read_only=False)
        ema_decay = declare(
            self, "ema_decay", 0.5, "EMA decay merging the updated adapter", (0.0, 0.999), read_only=False
        )
        steps = declare(self, "steps_per_update", 4, "optimiser steps per online update", (1, 10000))
        min_samples = declare(self, "min_samples", 1, "samples to wait for before an update", (1, 10000))
        model = model if model is not None else load_model(model_path)
        base_version = 0
        latest = AdapterStore(adapter_dir).newest()
        if latest is not None:
            base_version = latest[0]
            AdapterStore.load(model, latest[1])
        self.samples = samples if samples is not None else SampleStore(root / "samples.sqlite")
        self.version_pub = self.create_publisher(AdapterVersion, names.ADAPTER_VERSION, LATCHED_QOS)
        self.releases: list[AdapterRelease] = []
        self.worker = LearnerWorker(
            OnlineLearner(model, lr=lr, ema_decay=ema_decay, steps_per_update=steps),
            self.samples,
            adapter_dir,
            self._announce,
            min_samples=min_samples,
            ema_decay=ema_decay,
            base_version=base_version,
        )
        self.add_post_set_parameters_callback(self._retune)
        self.create_subscription(CorrectionSample, names.CORRECTION_SAMPLE, self._on_sample, EVENTS_QOS)
        if latest is not None:  # servers that start later swap to the adapter learned so far
            self._announce(
                AdapterRelease(base_version, str(latest[1]), len(self.samples), 0.0, ema_decay, 0.0)
            )
        self.worker.start()
        self.worker.notify()  # samples stored while no learner ran are learned first
        self.get_logger().info(f"learner ready: adapter v{base_version}, {len(self.samples)} samples stored")

    def _retune(self, params: list[Parameter]) -> None:
        """Apply a new ``lr`` or ``ema_decay`` (already range-checked by their descriptors)."""
        learner = self.worker.learner
        for p in params:
            if p.name == "lr":
                for group in learner.opt.param_groups:
                    group["lr"] = p.value
            elif p.name == "ema_decay":
                learner.ema.decay = self.worker.ema_decay = p.value
            else:
                continue
            self.get_logger().info(f"{p.name} is now {p.value:g}")

    def _on_sample(self, msg: CorrectionSample) -> None:
        self.get_logger().info(f"sample {msg.sample_id} of episode {msg.episode_id} stored; learning")
        self.worker.notify()

    def _announce(self, rel: AdapterRelease) -> None:
        self.releases.append(rel)
        if not self.context.ok():  # Ctrl-C during an update: the release is on disk, announced at restart
            return
        header = Header(stamp=self.get_clock().now().to_msg())
        self.version_pub.publish(
            AdapterVersion(
                header=header,
                version=rel.version,
                path=rel.path,
                num_samples=rel.num_samples,
                loss=rel.loss,
                ema_decay=rel.ema_decay,
            )
        )
        self.get_logger().info(
            f"adapter v{rel.version} released ({rel.num_samples} samples, "
            f"loss {rel.loss:.3f}, {rel.update_s:.1f} s) at {rel.path}"
        )

    def close(self) -> None:
        t0 = time.perf_counter()
        self.worker.stop()
        self.get_logger().debug(f"learner stopped in {time.perf_counter() - t0:.1f} s")


def main(args: list[str] | None = None) -> None:
    console_main(LearnerNode)
