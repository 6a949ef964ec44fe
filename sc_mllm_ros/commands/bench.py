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
    if args.target == "system":
        # The graph's CPU thread budget (nodes.CPU_ENV), set on import before the benchmark loads torch.
        importlib.import_module("sc_mllm_ros.nodes")
    module = importlib.import_module(TARGETS[args.target])
    parser = argparse.ArgumentParser(prog=f"sc-mllm bench {args.target}")
    module.add_arguments(parser)
    return module.run(parser.parse_args(args.options))
