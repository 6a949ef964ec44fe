"""Training: stage 1 (tower regression), stage 2 (co-fine-tuning), evaluation; online learning: ``online.py``.

The small model's recipe (``/work/shared/notes/small-model-recipe.md``): plain cross-entropy from random init
ignores the image, so stage 1 first regresses the pose labels from the visual tokens (the small model's
stand-in
for CLIP pretraining); stage 2 then trains on answer tokens only, with soft Gaussian targets over neighbouring
number tokens.  Batches are drawn from ``numpy.random.default_rng([seed, stage, step])`` so a resumed run sees
the same batches as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path
import random
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sc_mllm_ros.geometry import angle_between_deg
from sc_mllm_ros.model.checkpoint import atomic_write
from sc_mllm_ros.model.codec import dequantize_direction
from sc_mllm_ros.model.config import SCMLLMConfig
from sc_mllm_ros.model.data import Encoded
from sc_mllm_ros.model.network import SCMLLM
from sc_mllm_ros.model.precision import autocast
from sc_mllm_ros.model.prompts import PIXEL_SLOTS


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# -- batches and losses ------------------------------------------------------------------------------------
def collate(items: list[Encoded], model: SCMLLM) -> dict[str, torch.Tensor]:
    """Right-padded prompt+answer ids; labels only on answer tokens; per-token soft-target width and range."""
    cfg, tok = model.config, model.tokenizer
    seqs = [it.prompt_ids + it.answer_ids for it in items]
    t = max(len(s) for s in seqs)
    ids = torch.full((len(items), t), tok.pad_id, dtype=torch.long)
    labels = torch.full((len(items), t), -100, dtype=torch.long)
    sigma = torch.zeros((len(items), t))
    lo = torch.zeros((len(items), t), dtype=torch.long)
    hi = torch.zeros((len(items), t), dtype=torch.long)
    for i, it in enumerate(items):
        n = len(it.prompt_ids)
        ids[i, : len(seqs[i])] = torch.tensor(seqs[i])
        labels[i, n : len(seqs[i])] = torch.tensor(it.answer_ids)
        for j, slot in enumerate(it.answer_slots):
            if slot:
                pixel = slot in PIXEL_SLOTS
                sigma[i, n + j] = cfg.train.sigma_pixel if pixel else cfg.train.sigma_direction
                lo[i, n + j], hi[i, n + j] = (0, cfg.answer_size - 1) if pixel else (-50, 50)
    images = torch.stack([it.image for it in items])
    batch = {"images": images, "ids": ids, "labels": labels, "sigma": sigma, "lo": lo, "hi": hi}
    with_initial = [it.initial is not None for it in items]
    if any(with_initial):
        if not all(with_initial):
            raise ValueError("a batch mixes one-image and before/after samples; see views_groups")
        batch["initial"] = torch.stack([it.initial for it in items])
    return batch


def views_groups(items: list[Encoded]) -> list[list[Encoded]]:
    """The items split by how many images they show (a batch's sequences must line up)."""
    groups = [[it for it in items if it.initial is None], [it for it in items if it.initial is not None]]
    return [g for g in groups if g]


def batch_loss(model: SCMLLM, items: list[Encoded], soft: bool) -> torch.Tensor:
    """Mean answer loss over ``items``, one forward pass per group of equal views, weighted by group size."""
    total = 0.0
    for group in views_groups(items):
        batch = collate(group, model)
        logits = model.text_logits(batch["images"], batch["ids"], initial=batch.get("initial"))
        total = total + answer_loss(logits, batch, model, soft) * (len(group) / len(items))
    return total


def answer_loss(
    logits: torch.Tensor, batch: dict[str, torch.Tensor], model: SCMLLM, soft: bool
) -> torch.Tensor:
    """Cross-entropy on answer tokens; number tokens get Gaussian soft targets over their slot's range."""
    tok = model.tokenizer
    mask = batch["labels"] != -100
    lp = logits[mask].float().log_softmax(-1)
    target = batch["labels"][mask]
    loss = -lp.gather(1, target[:, None]).squeeze(1)
    if soft and tok.has_number_tokens:
        sigma = batch["sigma"][mask]
        rows = sigma > 0
        if rows.any():
            first, lo_n = tok.number_first_id, tok.number_lo
            vals = torch.arange(lo_n, tok.number_hi + 1, dtype=torch.float32, device=lp.device)
            tv = (target[rows] - first + lo_n).float()
            w = torch.exp(-((vals[None] - tv[:, None]) ** 2) / (2 * sigma[rows][:, None] ** 2))
            w = w * (
                (vals[None] >= batch["lo"][mask][rows][:, None])
                & (vals[None] <= batch["hi"][mask][rows][:, None])
            )
            w = w / w.sum(1, keepdim=True)
            soft_loss = -(w * lp[rows, first : first + len(vals)]).sum(1)
            loss = loss.clone()
            loss[rows] = soft_loss
    return loss.mean()


def regression_loss(model: SCMLLM, items: list[Encoded]) -> torch.Tensor:
    images = torch.stack([it.image for it in items])
    target = torch.from_numpy(np.stack([it.target for it in items]))
    contact, dirs = model.head(model.visual_tokens(images))
    return 2.0 * (contact - target[:, :2]).abs().mean() + (dirs - target[:, 2:]).abs().mean()


# -- stage runners -----------------------------------------------------------------------------------------
@dataclass
class TrainState:
    stage: int = 1
    step: int = 0


class Trainer:
    """Runs stage 1 then stage 2, checkpointing ``out/model`` and ``out/train_state.pt`` atomically."""

    def __init__(self, model: SCMLLM, train: list[Encoded], out: str | Path | None = None) -> None:
        self.model, self.train, self.out = model, train, None if out is None else Path(out)
        self.cfg = model.config.train
        self.state = TrainState(
            stage=1 if self.cfg.stage1_steps > 0 and model.config.vision.kind != "clip" else 2
        )
        self.opt: torch.optim.Optimizer | None = None
        self.pose_items = [it for it in train if it.target is not None]
        if not train:
            raise ValueError("no training samples")

    def _make_opt(self) -> None:
        if self.state.stage == 1:
            self.model.set_trainable("vision")
            lr, wd = self.cfg.stage1_lr, 0.0
        else:
            self.model.set_trainable("all" if self.cfg.full_finetune else "adapter")
            lr, wd = self.cfg.lr, self.cfg.weight_decay
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        print(f"stage {self.state.stage}: {self.model.trainable_summary()}")

    def _batch(self, pool: list[Encoded]) -> list[Encoded]:
        rng = np.random.default_rng([self.cfg.seed, self.state.stage, self.state.step])
        return [
            pool[i] for i in rng.choice(len(pool), size=min(self.cfg.batch_size, len(pool)), replace=False)
        ]

    def step(self) -> float:
        model, cfg = self.model, self.cfg
        stage1 = self.state.stage == 1
        total, base = (cfg.stage1_steps, cfg.stage1_lr) if stage1 else (cfg.steps, cfg.lr)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.state.step, total, base, min(cfg.warmup_steps, total // 10 + 1))
        model.train()
        with autocast(cfg.precision, model.device):
            if stage1:
                loss = regression_loss(model, self._batch(self.pose_items))
            else:
                loss = batch_loss(model, self._batch(self.train), cfg.soft_targets)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
        self.opt.step()
        model.eval()
        self.state.step += 1
        return loss.item()

    def run(self, progress: bool = True) -> list[float]:
        """Train to the end (or continue a resumed run); returns the stage-2 losses of this call."""
        losses: list[float] = []
        if self.state.stage == 1 and not self.pose_items:
            print("stage 1 skipped: no pose samples with ground truth")
            self.state = TrainState(2, 0)
        for stage in (1, 2):
            if self.state.stage != stage:
                continue
            total = self.cfg.stage1_steps if stage == 1 else self.cfg.steps
            if self.opt is None:
                self._make_opt()
            bar = tqdm(total=total, initial=self.state.step, desc=f"stage {stage}", disable=not progress)
            while self.state.step < total:
                loss = self.step()
                if stage == 2:
                    losses.append(loss)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                if self.out is not None and self.state.step % self.cfg.save_every == 0:
                    self.save()
            bar.close()
            if stage == 1:
                self.state, self.opt = TrainState(2, 0), None
        self.model.set_trainable("adapter")
        if self.out is not None:
            self.save()
        return losses

    def save(self) -> None:
        self.model.save_pretrained(self.out / "model")
        state = {
            "stage": self.state.stage,
            "step": self.state.step,
            "opt": None if self.opt is None else self.opt.state_dict(),
        }
        atomic_write(self.out / "train_state.pt", lambda tmp: torch.save(state, tmp))

    @classmethod
    def resume(cls, out: str | Path, train: list[Encoded]) -> Trainer:
        out = Path(out)
        model = SCMLLM.from_pretrained(out / "model")
        trainer = cls(model, train, out)
        saved = torch.load(out / "train_state.pt", weights_only=False)
        trainer.state = TrainState(saved["stage"], saved["step"])
        if saved["opt"] is not None:
            trainer._make_opt()
            trainer.opt.load_state_dict(saved["opt"])
        print(f"resumed at stage {trainer.state.stage}, step {trainer.state.step}")
        return trainer


# -- evaluation --------------------------------------------------------------------------------------------
def evaluate(model: SCMLLM, items: list[Encoded], progress: bool = True) -> dict[str, float]:
    """Greedy constrained answers vs ground truth, next to the predict-the-mean baseline."""
    size = model.config.answer_size
    pose = [it for it in items if it.family != "failure"]
    fail = [it for it in items if it.family == "failure"]
    res: dict[str, float] = {}
    if pose:
        errs, ups, fwds, passes = [], [], [], []
        truth = np.array([[it.values[k] for k in ("row", "col")] for it in pose], dtype=float)
        for it in tqdm(pose, desc="eval pose", disable=not progress, leave=False):
            c, n = model.decode(it.image, it.prompt_ids, it.family)
            v, t = c.values, it.values
            errs.append(math.hypot(v["row"] - t["row"], v["col"] - t["col"]))
            ups.append(
                angle_between_deg(
                    dequantize_direction([v[k] for k in ("ux", "uy", "uz")]),
                    dequantize_direction([t[k] for k in ("ux", "uy", "uz")]),
                )
            )
            fwds.append(
                angle_between_deg(
                    dequantize_direction([v[k] for k in ("fx", "fy", "fz")]),
                    dequantize_direction([t[k] for k in ("fx", "fy", "fz")]),
                )
            )
            passes.append(n)
        mean_err = np.linalg.norm(truth - truth.mean(0), axis=1)
        res.update(
            {
                "contact_px_mean": float(np.mean(errs)),
                "contact_px_median": float(np.median(errs)),
                "contact_within_10px": float(np.mean(np.array(errs) <= 10)),
                "up_deg": float(np.mean(ups)),
                "forward_deg": float(np.mean(fwds)),
                "baseline_mean_contact_px": float(mean_err.mean()),
                "forward_passes": float(np.mean(passes)),
                "answer_frame": float(size),
            }
        )
    if fail:
        causes = [str(it.values["cause"]) for it in fail]
        answers = [model.check(it.image, it.prompt_ids, it.initial) for it in fail]
        hits = [a.cause == c for a, c in zip(answers, causes)]
        said_failure = np.array([not a.success for a in answers])
        failed = np.array([c != "success" for c in causes])
        majority = max(set(causes), key=causes.count)
        res.update(
            {
                "failure_accuracy": float(np.mean(hits)),
                "baseline_majority_accuracy": float(np.mean([c == majority for c in causes])),
                "failure_recall": float(said_failure[failed].mean()) if failed.any() else float("nan"),
                "failure_precision": float(failed[said_failure].mean())
                if said_failure.any()
                else float("nan"),
            }
        )
    return res


def train_model(
    config: SCMLLMConfig, train: list[Encoded], out: str | Path | None = None, progress: bool = True
) -> tuple[SCMLLM, list[float], float]:
    """Build a model from ``config`` and run both stages; returns (model, stage-2 losses, seconds)."""
    seed_everything(config.train.seed)
    model = SCMLLM(config)
    t0 = time.perf_counter()
    losses = Trainer(model, train, out).run(progress)
    return model, losses, time.perf_counter() - t0


# -- the checker's threshold -------------------------------------------------------------------------------
def checker_scores(
    model: SCMLLM, items: list[Encoded], progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The checker's P(success) on each failure-family item, and whether that attempt really failed."""
    fail = [it for it in items if it.family == "failure"]
    p = [
        model.check(it.image, it.prompt_ids, it.initial).success_probability
        for it in tqdm(fail, desc="checker", disable=not progress, leave=False)
    ]
    return np.array(p, dtype=float), np.array([it.values["cause"] != "success" for it in fail])


def detection_rates(p_success: np.ndarray, failed: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall, precision, specificity, balanced accuracy of "failure" (said when P(success) < threshold)."""
    said = p_success < threshold
    tp, fp = float((said & failed).sum()), float((said & ~failed).sum())
    recall = tp / max(failed.sum(), 1)
    specificity = float((~said & ~failed).sum()) / max((~failed).sum(), 1)
    return {
        "threshold": float(threshold),
        "recall": recall,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "specificity": specificity,
        "balanced_accuracy": 0.5 * (recall + specificity),
    }


def choose_threshold(p_success: np.ndarray, failed: np.ndarray) -> float:
    """The best balanced accuracy of "failure" over midpoints between scores (ties: nearest 0.5)."""
    if failed.all() or not failed.any():
        raise ValueError("choosing a threshold needs both failed and successful attempts")
    s = np.unique(p_success)
    candidates = np.concatenate([[0.0], (s[1:] + s[:-1]) / 2, [1.0]]) if len(s) > 1 else np.array([0.5])
    scores = [detection_rates(p_success, failed, t)["balanced_accuracy"] for t in candidates]
    best = np.flatnonzero(np.isclose(scores, max(scores)))
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
