"""The graph in one process under a MultiThreadedExecutor (``sc-mllm bringup``, tests).

The three processes of the launch file, composed: the model host (one model for the policy, checker and
correction nodes and the ``run_episode`` action), the arm (the simulator node on the embedded world)
and the learner, which trains its own copy of the adapter (the serving model is never trained).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import threading

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from sc_mllm_ros.client import ScMllmCommander
from sc_mllm_ros.episode.serving import ModelServer
from sc_mllm_ros.nodes.learner import LearnerNode
from sc_mllm_ros.nodes.model_host import ModelHost
from sc_mllm_ros.nodes.sim_node import SimNode


def _default_config() -> Path:
    """config/sc_mllm.yaml of the source tree, else the installed package's share directory."""
    source = Path(__file__).resolve().parents[2] / "config" / "sc_mllm.yaml"
    if source.is_file():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("sc_mllm_ros")) / "config" / "sc_mllm.yaml"


DEFAULT_CONFIG = _default_config()


@dataclass
class System:
    host: ModelHost
    nodes: list[Node]  # the host's nodes, the arm and the learner
    client: ScMllmCommander
    executor: MultiThreadedExecutor
    _thread: threading.Thread = field(init=False)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        for node in [*self.nodes, self.client]:
            self.executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, name="sc_mllm_executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        # Spun here, not with executor.spin(): shutdown() stops this loop before it destroys the executor,
        # which would otherwise race a callback in flight.
        while not self._stop.is_set() and self.executor.context.ok():
            self.executor.spin_once(timeout_sec=0.1)

    @property
    def server(self) -> ModelServer:
        return self.host.server

    def node(self, cls: type) -> Node:
        return next(n for n in self.nodes if isinstance(n, cls))

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.executor.shutdown()
        for node in [*self.nodes, self.client]:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()


def compose(
    model,
    data_dir: str | Path,
    config: str | Path | None = DEFAULT_CONFIG,
    overrides: dict[str, dict] | None = None,
    model_version: str = "",
    arm: bool = True,
) -> System:
    """Model host, arm and learner over one ``model``; ``overrides`` maps node names to parameter values.

    ``model`` None: the host loads its ``model_path`` (as the ``model_host`` executable does). ``arm`` False
    leaves the arm to another process (``sim_node``, as the launch file runs it).
    """
    if not rclpy.ok():
        raise RuntimeError("call rclpy.init() first")
    cli_args = ["--ros-args", "--params-file", str(config)] if config else None
    overrides = dict(overrides or {})
    for name in ("sc_mllm_model_host", "sc_mllm_learner"):  # the two that keep stores
        overrides[name] = {"data_dir": str(data_dir), **overrides.get(name, {})}

    def params(name: str) -> dict:
        given = overrides.get(name, {})
        return {
            "cli_args": cli_args,
            "parameter_overrides": [Parameter(k, value=v) for k, v in given.items()],
        }

    server = ModelServer(model, model_version=model_version or "in-process") if model is not None else None
    host = ModelHost(server, overrides, cli_args)
    arms = [SimNode(**params("sc_mllm_sim"))] if arm else []
    learner = LearnerNode(host.server.model.clone(), **params("sc_mllm_learner"))
    nodes = [*host.nodes, *arms, learner]
    return System(host, nodes, ScMllmCommander(), MultiThreadedExecutor(num_threads=8))
