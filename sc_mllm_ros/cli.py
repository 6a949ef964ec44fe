"""``sc-mllm``: one entry point, one subcommand per job.

Each subcommand lives in ``sc_mllm_ros/commands/<name>.py`` as ``add_arguments(parser)`` and
``run(args) -> int`` and is imported only when called, so ``sc-mllm doctor`` works even when torch
or MuJoCo is broken.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module under sc_mllm_ros.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("doctor", "report which parts of the stack are present"),
    "gen-data": ("gen_data", "generate a dataset of simulated episodes for the three prompt families"),
    "train": ("train", "train the small SC-MLLM (stage 1: visual tower, stage 2: co-fine-tuning)"),
    "eval": ("eval", "evaluate a model in the embedded world: the paper's tables on our benchmark"),
    "bench": ("bench", "print benchmarks (sim, model, system) measured side by side"),
    "bringup": ("bringup", "run the whole ROS 2 graph in one process on the embedded arm (closed loop)"),
    "correct": ("correct", "ask /request_correction to correct an episode with expert hints"),
    "baselines": ("baselines", "fixed policies on the same scenes per split; the world's acceptance gates"),
    "train-experts": ("train_experts", "train the position expert (RGB-D affordance U-Net)"),
    "calibrate": ("calibrate", "choose the checker's threshold on the policy's own attempts (validation)"),
}


def _load(module: str):
    return importlib.import_module(f"sc_mllm_ros.commands.{module}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sc-mllm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Only the invoked command's module is imported (its arguments are added below).
        if name in sys.argv[1:2]:
            _load(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    saved, sys.argv = sys.argv, [sys.argv[0], *argv]
    try:
        args = build_parser().parse_args(argv)
    finally:
        sys.argv = saved
    args._argv = list(argv)  # the command line as typed, for provenance records
    try:
        return int(_load(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
