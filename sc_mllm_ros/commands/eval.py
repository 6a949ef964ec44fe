"""``sc-mllm eval``: N episodes per split in the embedded world; report.md, report.json and plots."""

from __future__ import annotations

import argparse
from dataclasses import fields
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sc_mllm_ros.assets import DEFAULT_MODEL
    from sc_mllm_ros.evaluation import EvalConfig

    parser.add_argument(
        "--model", default=str(DEFAULT_MODEL), help="model directory (default: the shipped one)"
    )
    parser.add_argument("--episodes", type=int, default=EvalConfig.episodes, help="episodes per split")
    parser.add_argument("--out", required=True, help="output folder for report.md, report.json and plots")
    parser.add_argument(
        "--seed", type=int, default=EvalConfig.seed, help="scene seed (never a training seed)"
    )
    parser.add_argument("--splits", nargs="+", choices=("seen", "unseen"), default=["seen", "unseen"])
    parser.add_argument("--correction-rounds", type=int, default=EvalConfig.correction_rounds)
    parser.add_argument(
        "--learning-rounds",
        type=int,
        default=EvalConfig.learning_rounds,
        help="continual-learning rounds (0 to skip)",
    )
    parser.add_argument("--ema-decay", type=float, default=EvalConfig.ema_decay)
    parser.add_argument(
        "--gate",
        choices=("checker", "oracle"),
        default=EvalConfig.gate,
        help="what triggers corrections: the model's checker (as deployed) or the ground truth (upper bound)",
    )
    parser.add_argument(
        "--experts",
        choices=("rgbd", "oracle"),
        default=EvalConfig.experts,
        help="the correction hints: the RGB-D experts (as deployed) or the noisy ground truth (upper bound)",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from sc_mllm_ros.evaluation import EvalConfig, evaluate, write_report
    from sc_mllm_ros.model import SCMLLM

    if args.episodes < 1:
        raise SystemExit("--episodes must be at least 1")
    card = Path(args.model) / "training.json"
    training_seed = json.loads(card.read_text()).get("data_seed") if card.is_file() else None
    if training_seed is not None and int(training_seed) == args.seed:
        raise SystemExit(f"--seed {args.seed} is the seed the model's training data came from; pick another")
    model = SCMLLM.from_pretrained(args.model)
    known = {f.name for f in fields(EvalConfig)}
    cfg = EvalConfig(
        **{k: v for k, v in vars(args).items() if k in known},
        continual_learning=args.learning_rounds > 0,
        progress=not args.no_progress,
    )
    report, rows = evaluate(model, cfg, tuple(args.splits))
    report["meta"]["model"] = args.model
    out = Path(args.out)
    write_report(report, out, rows)
    print((out / "report.md").read_text())
    return 0
