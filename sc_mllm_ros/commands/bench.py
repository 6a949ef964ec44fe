"""``sc-mllm bench {sim,model,system,experts} [options]``: benchmarks that print ratios side by side."""

from __future__ import annotations

import argparse
import importlib

# target -> module with ``add_arguments(parser)`` and ``run(args) -> int``; only the chosen one is imported.
TARGETS = {
    "sim": "sc_mllm_ros.sim.bench",
    "model": "sc_mllm_ros.model.bench",
    "system": "sc_mllm_ros.evaluation.bench",
    "experts": "sc_mllm_ros.experts.bench",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", choices=sorted(TARGETS), help="what to benchmark")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the target's options (see TARGET --help)")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(TARGETS[args.target])
    parser = argparse.ArgumentParser(prog=f"sc-mllm bench {args.target}")
    module.add_arguments(parser)
    return module.run(parser.parse_args(args.options))
