"""``sc-mllm bench {sim,model,system}``: benchmarks that print ratios measured side by side."""

from __future__ import annotations

import argparse
import importlib

# target -> module with ``add_arguments(parser)`` and ``run(args) -> int``
TARGETS = {
    "sim": "sc_mllm_ros.sim.bench",
    "model": "sc_mllm_ros.model.bench",
    "system": "sc_mllm_ros.episode.bench",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", required=True)
    for name, module in TARGETS.items():
        p = sub.add_parser(name, help=f"benchmark the {name}")
        p.set_defaults(_bench=module)
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(args._bench).run(args)
