"""``sc-mllm calibrate``: choose the checker's threshold on a validation set of the policy's own attempts.

The threshold on the checker's confidence (P(success) among its four answers) trades recall of failures for
precision. It is chosen here, on attempts of the model itself on scenes it was not trained on (``sc-mllm
gen-data --policy MODEL --seed S`` with a seed of its own), never on test scenes, and written into the model's
``config.json`` (``checker_threshold``) with the numbers in ``calibration.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="model folder to calibrate (its config.json is updated)"
    )
    parser.add_argument(
        "--data", required=True, help="validation dataset: `sc-mllm gen-data --policy` output"
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N records")
    parser.add_argument("--dry-run", action="store_true", help="print the choice, write nothing")


def run(args: argparse.Namespace) -> int:
    from sc_mllm_ros.model import SCMLLM
    from sc_mllm_ros.model.checkpoint import atomic_write
    from sc_mllm_ros.model.data import load_encoded, read_manifest
    from sc_mllm_ros.model.network import CONFIG_FILE
    from sc_mllm_ros.model.training import checker_scores, choose_threshold, detection_rates

    model_dir = Path(args.model)
    manifest = read_manifest(args.data)
    model = SCMLLM.from_pretrained(model_dir)
    items = load_encoded(args.data, "train", model.tokenizer, model.config, args.limit)
    p, failed = checker_scores(model, items)
    if len(p) == 0:
        print(f"{args.data} has no failure-family records to calibrate on")
        return 1
    threshold = choose_threshold(p, failed)
    result = {
        "data": str(args.data),
        "data_seed": manifest.get("seed"),
        "policy": manifest.get("generator", {}).get("policy"),
        "attempts": int(len(p)),
        "failures": int(failed.sum()),
        "before": detection_rates(p, failed, model.config.checker_threshold),
        "chosen": detection_rates(p, failed, threshold),
    }
    print(json.dumps(result, indent=2))
    if args.dry_run:
        return 0
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    config["checker_threshold"] = threshold
    atomic_write(
        model_dir / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n")
    )
    (model_dir / "calibration.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"checker_threshold = {threshold:.4f} written to {model_dir / CONFIG_FILE}")
    return 0
