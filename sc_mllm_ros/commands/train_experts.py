"""``sc-mllm train-experts``: train the position expert on training categories' affordance labels.

Samples come from ``sc_mllm_ros.sim.affordance.expert_samples`` (noisy RGB-D renders with per-pixel
pull-success labels); only the ``train`` split (seen categories) is learned from, ``test_seen`` and
``test_unseen`` are evaluated.  Writes ``OUT/config.json``, ``OUT/model.safetensors``,
``OUT/training.json`` (command, seeds, speed, held-out numbers) and ``OUT/README.md`` (the card).
The rotation expert has no weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import shlex

# Data seeds: training renders and held-out renders never share a seed.
EVAL_SEED_OFFSET = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="output folder (default: the package's shipped weights)")
    # Each labelled render executes a grid of pulls (seconds per sample); SC_MLLM_AFFORDANCE_CACHE keeps them.
    parser.add_argument("--samples", type=int, default=600, help="training renders (train split only)")
    parser.add_argument("--eval-samples", type=int, default=50, help="held-out renders per test split")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0, help="training seed (batches, initialisation)")
    parser.add_argument("--data-seed", type=int, default=1000, help="seed of the rendered samples")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")


def _card(provenance: dict) -> str:
    rows = "\n".join(
        f"| {split} | {r['samples']} | {100 * r['position_hit']:.1f} % | "
        f"{100 * r['position_hit_any_candidate']:.1f} % | {r['rotation_error_deg_median']:.1f} | "
        f"{100 * r['rotation_within_limit']:.1f} % | {r['refused']} | {r['latency_ms_median']:.0f} |"
        for split, r in provenance["held_out"].items()
    )
    t = provenance["training"]
    return f"""# Position expert: the shipped weights

A U-Net ({provenance["parameters"]:,} parameters, 112 px RGB-D input, FiLM-conditioned on the part phrase) that
predicts per-pixel pull success, trained only on the training split (seen categories) of the affordance
samples. Loaded by `sc_mllm_ros.experts.Experts.from_pretrained()`; see the README's "Experts" section.

## How it was made

```bash
{provenance["command"]}
```

{t["steps"]} steps of batch {t["batch_size"]} (AdamW {t["lr"]}, cosine), {provenance["train_samples"]} training
renders (data seed {provenance["data_seed"]}), {t["seconds"]:.0f} s at {t["steps_per_s"]:.2f} steps/s on
{provenance["torch_threads"]} torch threads; final loss {t["final_loss"]:.3f}.

## Held-out (renders from data seed {provenance["data_seed"] + EVAL_SEED_OFFSET}; `training.json`)

| split | samples | hint in affordance | any of the k candidates | rotation error median (deg) | rotation <= 30 deg | refused | ms per hint (both experts) |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}
"""  # noqa: E501


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import torch

    # Building a torch optimizer imports torch._dynamo and with it triton, which crashes the process
    # (SIGSEGV) once the simulator's EGL renderer is loaded; importing it before any rendering avoids that.
    import torch._dynamo  # noqa: F401
    from tqdm import tqdm

    from sc_mllm_ros.episode.record import parse_task
    from sc_mllm_ros.experts import DEFAULT_EXPERTS, Experts, PositionExpert, PositionNet, PositionNetConfig
    from sc_mllm_ros.experts.metrics import evaluate_experts
    from sc_mllm_ros.experts.training import AffordanceData, PositionTrainConfig, train_position_net

    try:
        from sc_mllm_ros.sim.affordance import expert_samples
    except ImportError as err:
        print(f"the simulator's affordance samples are not available ({err})")
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = PositionTrainConfig(seed=args.seed)
    for name in ("steps", "batch_size", "lr"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    torch.manual_seed(cfg.seed)
    net_cfg = PositionNetConfig()
    progress = not args.no_progress
    samples = tqdm(
        expert_samples("train", args.samples, args.data_seed),
        total=args.samples,
        desc="render",
        disable=not progress,
    )
    data = AffordanceData.encode(
        ((s["rgb"], s["depth"], parse_task(s["task"]), s["affordance"]) for s in samples), net_cfg
    )
    net = PositionNet(net_cfg)
    stats = train_position_net(net, data, cfg, progress)
    out = Path(args.out or DEFAULT_EXPERTS)
    net.save_pretrained(out)
    experts = Experts(PositionExpert(net))
    held_out = {}
    for split in ("test_seen", "test_unseen"):
        items = expert_samples(split, args.eval_samples, args.data_seed + EVAL_SEED_OFFSET)
        held_out[split] = evaluate_experts(experts, items)
    provenance = {
        "command": "sc-mllm " + " ".join(shlex.quote(a) for a in getattr(args, "_argv", ["train-experts"])),
        "data_seed": args.data_seed,
        "train_seed": args.seed,
        "train_samples": len(data),
        "parameters": sum(p.numel() for p in net.parameters()),
        "torch_threads": torch.get_num_threads(),
        "training": {**asdict(cfg), **stats},
        "held_out": held_out,
    }
    (out / "training.json").write_text(json.dumps(provenance, indent=2))
    (out / "README.md").write_text(_card(provenance))
    print(json.dumps(held_out, indent=2))
    return 0
