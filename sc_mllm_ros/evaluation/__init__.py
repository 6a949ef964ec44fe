"""Evaluation of an SC-MLLM in the embedded world: the paper's tables on our benchmark (``sc-mllm eval``)."""

from __future__ import annotations

from dataclasses import asdict

from sc_mllm_ros.evaluation.protocol import episode_rows, EvalConfig, Evaluator, summarize
from sc_mllm_ros.evaluation.report import build_report, markdown, write_report

__all__ = ["EvalConfig", "Evaluator", "evaluate", "markdown", "write_report"]


def evaluate(
    model, config: EvalConfig, splits: tuple[str, ...] = ("seen", "unseen")
) -> tuple[dict, list[dict]]:
    """Run the protocol; the report dict and one row per episode.

    Continual learning starts from the model as given for each split (the adapter is restored between
    splits); retention is seen success measured after learning on the unseen split.
    """
    from sc_mllm_ros.model import OnlineLearner

    ev = Evaluator(model, config)
    results = {split: ev.run_split(split) for split in splits}
    summaries = {split: summarize(r) for split, r in results.items()}
    learning: dict = {}
    if config.continual_learning and config.learning_rounds > 0:
        base = {k: v.clone() for k, v in model.adapter_state_dict().items()}
        for split in splits:
            model.load_adapter_state_dict(base)
            learner = OnlineLearner(
                model,
                lr=config.learning_rate,
                ema_decay=config.ema_decay,
                steps_per_update=config.steps_per_update,
            )
            scores, log = ev.continual_learning(split, learner)
            learning[split] = {"scores": scores, "log": log}
            if split == "unseen" and "seen" in splits:
                learning["seen_before"] = summaries["seen"]["success_no_correction"]
                learning["seen_after_unseen"] = ev.uncorrected_success("seen", ev.scenes("seen"))
        model.load_adapter_state_dict(base)
    meta = {"seed": config.seed, **{k: v for k, v in asdict(config).items() if k != "progress"}}
    rows = [row for r in results.values() for row in episode_rows(r)]
    return build_report(summaries, learning, meta), rows
