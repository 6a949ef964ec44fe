"""``sc-mllm train``: stage 1 (visual tower) + stage 2 (co-fine-tuning) of the small SC-MLLM on a dataset.

Writes ``OUT/model/`` (full checkpoint and ``training.json`` provenance), ``OUT/adapter/`` (peft folder),
``OUT/train_state.pt`` (for ``--resume``)
and ``OUT/eval.json`` (held-out accuracy next to the predict-the-mean baseline).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import shlex
import time

# model.config.CHECKER_VIEWS, spelt out so that `--help` does not load torch (a test keeps them equal)
CHECKER_VIEWS = ("end", "before_after", "before_after_change")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        help="dataset folder written by `sc-mllm gen-data`; repeat to train on several (e.g. the policy's "
        "own attempts); held-out numbers come from the first one's test splits",
    )
    parser.add_argument("--out", required=True, help="output folder (checkpoints, eval.json)")
    parser.add_argument("--stage1-steps", type=int, default=None, help="visual-tower regression steps")
    parser.add_argument("--steps", type=int, default=None, help="co-fine-tuning steps")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size",
        choices=("small", "tiny"),
        default="small",
        help="small: the recipe's model; tiny: a toy for smoke tests",
    )
    parser.add_argument("--tokenizer", choices=("numbers", "bpe"), default="numbers")
    parser.add_argument("--no-soft-targets", action="store_true", help="plain one-hot cross-entropy")
    parser.add_argument(
        "--checker-views",
        choices=CHECKER_VIEWS,
        default=None,
        help="what the checker sees: the end image alone (the paper), the initial and the end image, or "
        "both and their change image (default: before_after; with --init-from, the model's own)",
    )
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL",
        help="start co-fine-tuning (stage 2 only, a fresh schedule of --steps) from a trained model folder; "
        "--checker-views may give its checker a new view",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="auto: bf16 autocast only where the CPU/GPU has native bf16 (AMX, AVX512-BF16), else fp32",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training records")
    parser.add_argument("--eval-limit", type=int, default=200, help="held-out records per split to evaluate")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    parser.add_argument("--no-progress", action="store_true")


def _config(args: argparse.Namespace):
    from sc_mllm_ros.model import LLMConfig, SCMLLMConfig, TokenizerConfig, VisionConfig

    cfg = SCMLLMConfig(
        tokenizer=TokenizerConfig(kind=args.tokenizer), checker_views=args.checker_views or "before_after"
    )
    if args.size == "tiny":
        cfg.vision = VisionConfig(image_size=64, width=16)
        cfg.llm = LLMConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128)
    t = cfg.train
    t.seed = args.seed
    t.soft_targets = not args.no_soft_targets
    t.precision = args.precision
    _override(t, args, ("stage1_steps", "steps", "batch_size", "lr"))
    return cfg


def _override(train_cfg, args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """The ``TrainConfig`` fields among ``names`` that were given on the command line."""
    for name in names:
        if getattr(args, name) is not None:
            setattr(train_cfg, name, getattr(args, name))


def run(args: argparse.Namespace) -> int:
    import torch

    from sc_mllm_ros.model import precision, SCMLLM
    from sc_mllm_ros.model.data import load_encoded, read_manifest
    from sc_mllm_ros.model.training import evaluate, seed_everything, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    manifest = read_manifest(args.data[0])
    for extra in args.data[1:]:
        read_manifest(extra)  # a clear error before minutes of loading

    def training_set(model, limit):
        return [s for d in args.data for s in load_encoded(d, "train", model.tokenizer, model.config, limit)]

    progress = not args.no_progress
    if args.resume:
        if not (out / "train_state.pt").is_file():
            print(f"nothing to resume in {out}")
            return 1
        model = SCMLLM.from_pretrained(out / "model")
        train = training_set(model, args.limit)
        trainer = Trainer.resume(out, train)
        # Longer runs may be asked for on resume; everything else comes from the checkpoint.
        _override(trainer.cfg, args, ("stage1_steps", "steps"))
    elif args.init_from:
        seed_everything(args.seed)
        model = SCMLLM.from_pretrained(args.init_from)
        if args.checker_views:
            model.config.checker_views = args.checker_views
        t = model.config.train
        t.seed, t.stage1_steps, t.precision = args.seed, 0, args.precision
        _override(t, args, ("steps", "batch_size", "lr"))
        train = training_set(model, args.limit)
        trainer = Trainer(model, train, out)
    else:
        cfg = _config(args)
        seed_everything(cfg.train.seed)
        model = SCMLLM(cfg)
        train = training_set(model, args.limit)
        trainer = Trainer(model, train, out)
    print(f"{len(train)} training samples from {args.data}; {precision.describe(model.device)}")
    t0 = time.perf_counter()
    trainer.run(progress)
    train_s = time.perf_counter() - t0
    model = trainer.model
    model.save_adapter(out / "adapter")
    results = {}
    for split in ("test_seen", "test_unseen"):
        if manifest.get("shards", {}).get(split):
            items = load_encoded(args.data[0], split, model.tokenizer, model.config, args.eval_limit)
            if items:
                results[split] = evaluate(model, items, progress)
    (out / "eval.json").write_text(json.dumps(results, indent=2))
    # Provenance beside the weights: `sc-mllm eval` refuses to evaluate on the data seed it learned from.
    provenance = {
        "command": "sc-mllm " + " ".join(shlex.quote(a) for a in getattr(args, "_argv", [])),
        "data": [str(d) for d in args.data],
        "data_seed": manifest.get("seed"),
        "data_seeds": [read_manifest(d).get("seed") for d in args.data],
        "train_seed": args.seed,
        "init_from": args.init_from,
        "train_seconds": round(train_s, 1) if not args.resume else None,
        "torch_threads": torch.get_num_threads(),
        # what `auto` meant on this machine: the hardware seen and the precision trained in
        "precision": precision.resolve(model.config.train.precision, model.device),
        "precision_hardware": precision.describe(model.device),
        "held_out": results,
    }
    (out / "model" / "training.json").write_text(json.dumps(provenance, indent=2))
    print(json.dumps(results, indent=2))
    return 0
