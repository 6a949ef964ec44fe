"""The evaluation's arithmetic, pure and small: rates with Wilson intervals, the checker's scores, the curves.

"Failure" is the positive class of the checker's binary scores (it is what triggers a correction). An
attempt the arm could not reach is the executor's verdict, not the checker's: it has its own row and
column in the confusion matrix and stays out of the binary scores and AUROC.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sc_mllm_ros.evaluation.baselines import wilson

FAILURE_CAUSES = ("position", "rotation", "position and rotation")
UNLABELLED = "failure, no paper cause"  # the pose is right by the labels, yet the part did not move
UNREACHABLE = "unreachable"
CONFUSION_ROWS = ("success", *FAILURE_CAUSES, UNLABELLED, UNREACHABLE)
CONFUSION_COLUMNS = ("success", *FAILURE_CAUSES, UNREACHABLE)


def rate(k: int, n: int) -> dict:
    """K of n with its Wilson 95 % interval; the rate is None when n is 0."""
    return {"k": int(k), "n": int(n), "rate": k / n if n else None, "ci": list(wilson(k, n))}


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def binary_scores(failed: Sequence[bool], flagged: Sequence[bool]) -> dict:
    """Precision, recall, F1 of "failure", specificity and balanced accuracy, with the counts they come from.

    ``failed``: the ground truth per attempt; ``flagged``: the checker called it a failure.
    """
    if len(failed) != len(flagged):
        raise ValueError(f"{len(failed)} labels but {len(flagged)} verdicts")
    t, p = np.asarray(failed, bool), np.asarray(flagged, bool)
    tp, fp = int(np.sum(t & p)), int(np.sum(~t & p))
    fn, tn = int(np.sum(t & ~p)), int(np.sum(~t & ~p))
    precision, recall, specificity = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else (0.0 if fp + fn else None)
    balanced = None if recall is None or specificity is None else (recall + specificity) / 2
    return {
        "n": len(t),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "specificity": specificity,
        "balanced_accuracy": balanced,
    }


def auroc(positive: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve: P(a positive scores above a negative), ties counted half (Mann-Whitney).

    None when either class is missing or a score is not a number (the checker gave no confidence).
    """
    pos, s = np.asarray(positive, bool), np.asarray(scores, float)
    if pos.all() or not pos.any() or not np.isfinite(s).all():
        return None
    a, b = s[pos][:, None], s[~pos][None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def cause_scores(true: Sequence[str], predicted: Sequence[str]) -> dict:
    """Cause accuracy and macro-F1 over the paper's failure causes, on failures that carry a cause label.

    A failure the checker called a success counts against its cause's recall (it was not named).
    """
    pairs = [(t, p) for t, p in zip(true, predicted, strict=True) if t in FAILURE_CAUSES]
    if not pairs:
        return {"n": 0, "correct": 0, "accuracy": None, "macro_f1": None, "f1": {}}
    correct = sum(t == p for t, p in pairs)
    f1 = {}
    for c in FAILURE_CAUSES:
        tp = sum(t == c and p == c for t, p in pairs)
        wrong = sum((t == c) != (p == c) for t, p in pairs)  # false positives and false negatives of c
        if tp + wrong:  # a cause neither present nor predicted has no F1
            f1[c] = 2 * tp / (2 * tp + wrong)
    return {
        "n": len(pairs),
        "correct": correct,
        "accuracy": correct / len(pairs),
        "macro_f1": float(np.mean(list(f1.values()))),
        "f1": f1,
    }


def confusion(rows: Sequence[str], columns: Sequence[str]) -> dict:
    """Counts of (true row, checker's column) over :data:`CONFUSION_ROWS` x :data:`CONFUSION_COLUMNS`."""
    matrix = [[0] * len(CONFUSION_COLUMNS) for _ in CONFUSION_ROWS]
    for r, c in zip(rows, columns, strict=True):
        matrix[CONFUSION_ROWS.index(r)][CONFUSION_COLUMNS.index(c)] += 1
    return {"rows": list(CONFUSION_ROWS), "columns": list(CONFUSION_COLUMNS), "matrix": matrix}


def stopped_outcomes(ground_truth: Sequence[bool], rounds: int, cut: bool = False) -> list[bool]:
    """The episode's outcome when the loop may correct 0..``rounds`` times: the last attempt's ground truth.

    ``ground_truth``: of the attempts of one run allowed ``rounds`` corrections, which stops at its first
    success verdict, so the same run cut after r corrections is its first r + 1 attempts. ``cut``: the run
    ended without a goal for its next attempt (no depth at the answer): later rounds are failures.
    """
    if not ground_truth:
        return [False] * (rounds + 1)
    n = len(ground_truth)
    return [
        bool(ground_truth[r]) if r < n else (not cut and bool(ground_truth[-1])) for r in range(rounds + 1)
    ]
