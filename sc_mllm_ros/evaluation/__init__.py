"""Evaluation of an SC-MLLM in the embedded world (``sc-mllm eval``): the deployed loop, bounds, baselines."""

from __future__ import annotations

from sc_mllm_ros.evaluation.protocol import episode_rows, EvalConfig, evaluate
from sc_mllm_ros.evaluation.report import build_report, markdown, write_report

__all__ = ["EvalConfig", "build_report", "episode_rows", "evaluate", "markdown", "write_report"]
