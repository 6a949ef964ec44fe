"""What every node shares: declaring parameters with descriptors, loading the model, ``main()``."""

from __future__ import annotations

from collections.abc import Callable
import gc
from pathlib import Path
import sys
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    range_: tuple[float, float] | None = None,
    read_only: bool = True,
) -> Any:
    """Declare a parameter with a descriptor (description, a range for numbers) and return its value.

    Read-only unless ``read_only`` is False: most values are read once, at start-up, and a later change
    would silently do nothing.
    """
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if range_ is not None and isinstance(default, bool):
        raise TypeError("a bool parameter has no range")
    if range_ is not None and isinstance(default, int):
        desc.integer_range = [IntegerRange(from_value=int(range_[0]), to_value=int(range_[1]), step=1)]
    elif range_ is not None:
        lo, hi = float(range_[0]), float(range_[1])
        desc.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi)]
    return node.declare_parameter(name, default, desc).value


def model_version(path: str) -> str:
    """What a node reports as its model: the resolved checkpoint directory, or random-init."""
    from sc_mllm_ros.model import resolve_pretrained

    return str(resolve_pretrained(path) or "random-init")


def load_model(path: str, device: str = "cpu"):
    """The SC-MLLM at ``path`` (empty: the shipped model; random init when none is shipped)."""
    from sc_mllm_ros.model import resolve_pretrained, SCMLLM, SCMLLMConfig

    resolved = resolve_pretrained(path)
    return SCMLLM.from_pretrained(resolved, device=device) if resolved else SCMLLM(SCMLLMConfig())


def run_node(
    factory: Callable[[], Node | list[Node]], args: list[str] | None = None, threads: int = 8
) -> int:
    """Spin the node(s) ``factory`` makes under one MultiThreadedExecutor until Ctrl-C or shutdown.

    The demo_nodes_py idiom (Jazzy's ``rclpy.init`` is no context manager, so try/finally):
    KeyboardInterrupt and ExternalShutdownException end it quietly; each node's ``close()`` (its worker
    pools) runs before it is destroyed, so that SIGINT exits 0 at once.
    """
    rclpy.init(args=args)
    nodes: list[Node] = []
    executor = MultiThreadedExecutor(num_threads=threads)
    try:
        made = factory()
        nodes = made if isinstance(made, list) else [made]
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)
        for node in nodes:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def console_main(factory: Callable[[], Node | list[Node]]) -> None:
    rc = run_node(factory, sys.argv)
    # The process ends: spare it the final collection over a model's objects, which takes seconds on a
    # busy machine (longer than launch waits before it escalates to SIGTERM and SIGKILL).
    gc.freeze()
    sys.exit(rc)


def data_dir(node: Node) -> Path:
    return Path(declare(node, "data_dir", "sc_mllm_data", "directory of the episode and sample stores"))
