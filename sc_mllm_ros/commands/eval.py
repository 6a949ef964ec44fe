"""``sc-mllm eval``: the checker-gated loop beside its bounds and baselines; report.md, report.json, plots."""

from __future__ import annotations

import argparse
from dataclasses import fields
import json
from pathlib import Path
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sc_mllm_ros.assets import DEFAULT_MODEL
    from sc_mllm_ros.evaluation import EvalConfig
    from sc_mllm_ros.evaluation.protocol import ROLES, SPLITS

    d = EvalConfig
    parser.add_argument(
        "--model", default=str(DEFAULT_MODEL), help="model directory (default: the shipped one)"
    )
    parser.add_argument("--episodes", type=int, default=d.episodes, help="scenes per split")
    parser.add_argument("--out", required=True, help="output folder for report.md, report.json and plots")
    parser.add_argument("--seed", type=int, default=d.seed, help="scene seed (never a training seed)")
    parser.add_argument(
        "--split-role",
        choices=ROLES,
        default=d.split_role,
        help="validation: scenes for choices (threshold, steps, EMA decay; the report proposes a threshold); "
        "test: disjoint scenes, run once with the choices made",
    )
    parser.add_argument("--splits", nargs="+", choices=tuple(SPLITS), default=list(d.splits))
    parser.add_argument("--correction-rounds", type=int, default=d.correction_rounds)
    parser.add_argument(
        "--learning-rounds", type=int, default=d.learning_rounds, help="continual-learning rounds (0 to skip)"
    )
    parser.add_argument(
        "--cl-episodes", type=int, default=d.cl_episodes, help="scenes in each of set A, set B, retention set"
    )
    parser.add_argument("--cl-split", choices=tuple(SPLITS), default=d.cl_split)
    parser.add_argument("--steps-per-update", type=int, default=d.steps_per_update)
    parser.add_argument("--ema-decay", type=float, default=d.ema_decay)
    parser.add_argument(
        "--checker-threshold",
        type=float,
        default=None,
        help="the checker's success-confidence threshold (default: the model's); choose it with a "
        "validation run",
    )
    parser.add_argument(
        "--no-ablations", dest="ablations", action="store_false", help="skip the checker ablations"
    )
    parser.add_argument(
        "--mean-scenes", type=int, default=d.mean_scenes, help="training scenes for noun_mean_pose"
    )
    parser.add_argument(
        "--experts",
        choices=("rgbd", "oracle"),
        default=d.experts,
        help="the correction hints: the RGB-D experts (as deployed) or the noisy ground truth (upper bound)",
    )
    parser.add_argument("--workers", type=int, default=d.workers, help="processes (one torch thread each)")
    parser.add_argument("--no-progress", action="store_true")


def model_data_seeds(model: Path) -> set[int]:
    """The scene seeds of the data a model was trained (``training.json``) and calibrated on."""
    seeds: set[int] = set()
    for name, keys in (("training.json", ("data_seed", "data_seeds")), ("calibration.json", ("data_seed",))):
        path = model / name
        card = json.loads(path.read_text()) if path.is_file() else {}
        for key in keys:
            value = card.get(key)
            seeds.update(int(s) for s in (value if isinstance(value, list) else [value]) if s is not None)
    return seeds


def run(args: argparse.Namespace) -> int:
    from sc_mllm_ros.evaluation import build_report, episode_rows, EvalConfig, evaluate, write_report

    if args.seed in model_data_seeds(Path(args.model)):
        raise SystemExit(
            f"--seed {args.seed} is a seed the model's training or calibration data came from; pick another"
        )
    known = {f.name for f in fields(EvalConfig)}
    cfg = EvalConfig(**{k: v for k, v in vars(args).items() if k in known}, progress=not args.no_progress)
    cfg.splits = tuple(args.splits)
    try:
        cfg.validate()
    except ValueError as err:
        raise SystemExit(str(err)) from err
    t0 = time.perf_counter()
    results = evaluate(args.model, cfg)
    meta = {**results["config"], "model": args.model, "wall_s": time.perf_counter() - t0}
    report = build_report(results, meta)
    out = Path(args.out)
    write_report(report, out, episode_rows(results))
    print((out / "report.md").read_text())
    return 0
