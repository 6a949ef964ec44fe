"""The whole graph composed in one process under a MultiThreadedExecutor (``sc-mllm bringup``, tests).

The same node classes as the console scripts; they share one model server and the stores instead of
loading a model each, and the learner trains its own clone of the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import threading

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
import yaml

from sc_mllm_ros.episode.agent import ModelServer
from sc_mllm_ros.episode.store import EpisodeStore, SampleStore
from sc_mllm_ros.nodes.checker import CheckerNode
from sc_mllm_ros.nodes.correction import CorrectionNode
from sc_mllm_ros.nodes.driver import GraphClient
from sc_mllm_ros.nodes.learner import LearnerNode
from sc_mllm_ros.nodes.policy import PolicyNode
from sc_mllm_ros.nodes.sim_node import SimNode


def _default_config() -> Path:
    """config/sc_mllm.yaml of the source tree, else the installed package's share directory."""
    source = Path(__file__).resolve().parents[2] / "config" / "sc_mllm.yaml"
    if source.is_file():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("sc_mllm_ros")) / "config" / "sc_mllm.yaml"


DEFAULT_CONFIG = _default_config()


def yaml_parameters(
    path: str | Path | None, node_name: str, overrides: dict | None = None
) -> list[Parameter]:
    """A node's parameters from a ROS 2 params file (``/**`` and the node's section) plus ``overrides``."""
    values: dict = {}
    if path:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        for key in ("/**", node_name, f"/{node_name}"):
            values.update((doc.get(key) or {}).get("ros__parameters", {}))
    values.update(overrides or {})
    return [Parameter(k, value=v) for k, v in values.items()]


@dataclass
class System:
    nodes: list[Node]
    client: GraphClient
    executor: MultiThreadedExecutor
    server: ModelServer
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        for node in [*self.nodes, self.client]:
            self.executor.add_node(node)
        self._thread = threading.Thread(target=self.executor.spin, name="sc_mllm_executor", daemon=True)
        self._thread.start()

    def node(self, cls: type) -> Node:
        return next(n for n in self.nodes if isinstance(n, cls))

    def shutdown(self) -> None:
        self.executor.shutdown()
        self._thread.join(timeout=10)
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
) -> System:
    """Build every node over one model; ``overrides`` maps node names to parameter values."""
    if not rclpy.ok():
        raise RuntimeError("call rclpy.init() first")
    data_dir = Path(data_dir)
    overrides = overrides or {}

    def params(name: str) -> list[Parameter]:
        return yaml_parameters(config, name, {"data_dir": str(data_dir), **overrides.get(name, {})})

    server = ModelServer(model, model_version=model_version or "in-process")
    episodes = EpisodeStore(data_dir / "episodes.sqlite")
    samples = SampleStore(data_dir / "samples.sqlite")
    nodes = [
        SimNode(parameter_overrides=params("sc_mllm_sim")),
        PolicyNode(server, episodes, parameter_overrides=params("sc_mllm_policy")),
        CheckerNode(server, episodes, parameter_overrides=params("sc_mllm_checker")),
        CorrectionNode(server, episodes, samples, parameter_overrides=params("sc_mllm_correction")),
        LearnerNode(model.clone(), samples, parameter_overrides=params("sc_mllm_learner")),
    ]
    return System(nodes, GraphClient(), MultiThreadedExecutor(num_threads=8), server)
