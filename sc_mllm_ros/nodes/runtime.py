"""What every node shares: declaring parameters with descriptors, loading the model, ``main()``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import sys
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def declare(
    node: Node, name: str, default: Any, description: str, range_: tuple[float, float] | None = None
) -> Any:
    """Declare a parameter with a descriptor (description, and a range for numbers) and return its value."""
    desc = ParameterDescriptor(description=description)
    if range_ is not None and isinstance(default, bool):
        raise TypeError("a bool parameter has no range")
    if range_ is not None and isinstance(default, int):
        desc.integer_range = [IntegerRange(from_value=int(range_[0]), to_value=int(range_[1]), step=1)]
    elif range_ is not None:
        lo, hi = float(range_[0]), float(range_[1])
        desc.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi)]
    return node.declare_parameter(name, default, desc).value


def resolve_model_path(path: str) -> str:
    """``path``, or the shipped small model when empty; empty when neither exists (random init)."""
    from sc_mllm_ros.assets import DEFAULT_MODEL

    if path:
        return path
    return str(DEFAULT_MODEL) if DEFAULT_MODEL.is_dir() else ""


def load_model(path: str, device: str = "cpu"):
    """The SC-MLLM at ``path`` (a ``save_pretrained`` directory; empty: see :func:`resolve_model_path`)."""
    from sc_mllm_ros.model import SCMLLM, SCMLLMConfig

    path = resolve_model_path(path)
    return SCMLLM.from_pretrained(path, device=device) if path else SCMLLM(SCMLLMConfig())


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 4) -> int:
    """Spin one node under a MultiThreadedExecutor until Ctrl-C or shutdown (the demo_nodes_py idiom)."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def console_main(factory: Callable[[], Node]) -> None:
    sys.exit(run_node(factory, sys.argv))


def shared_model(node: Node, server=None):
    """The node's ModelServer: ``server`` when composed in one process, else one from ``model_path``."""
    from sc_mllm_ros.episode.agent import ModelServer

    path = declare(node, "model_path", "", "SC-MLLM checkpoint directory (empty: the shipped model)")
    if server is not None:
        return server
    return ModelServer(load_model(path), model_version=resolve_model_path(path) or "random-init")


def data_dir(node: Node) -> Path:
    return Path(declare(node, "data_dir", "sc_mllm_data", "directory of the episode and sample stores"))
