"""Online continual learning: adapter fine-tuning on new samples, merged into the served weights by an EMA.

One model and two adapter-sized states: the trainee's own adapter weights and their EMA.  Between updates the
model carries the EMA (what is served and saved); an update swaps the trainee's weights in, trains them, folds
them into the EMA and swaps the EMA back.  No second copy of the model: the paper-size model fits once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sc_mllm_ros.model.data import encode_sample, TrainingSample
from sc_mllm_ros.model.network import SCMLLM
from sc_mllm_ros.model.precision import autocast, resolve
from sc_mllm_ros.model.training import answer_loss, collate


class AdapterEMA:
    """``shadow <- decay * shadow + (1 - decay) * current`` per tensor, after each online update.

    The served weights are the shadow; the trainee keeps training its own weights, so the EMA is a Polyak
    average of the fine-tuning trajectory that damps any single batch (against catastrophic forgetting).
    """

    def __init__(self, state: dict[str, torch.Tensor], decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in state.items()}
        self.num_updates = 0

    def update(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise ValueError("EMA update with a different set of adapter tensors")
        with torch.no_grad():
            for k, v in state.items():
                self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1.0 - self.decay)
        self.num_updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}


class OnlineLearner:
    """Fine-tunes the adapter of ``model`` on new samples and leaves the EMA of the trainee in ``model``.

    ``model`` must not serve while it learns (its adapter holds the trainee's weights during :meth:`update`):
    serve from another instance and hot-swap the adapters saved from this one, as the model host does.

    ``ema_decay`` defaults to 0.5: the paper reports large gains after a single continual-learning round
    (66.0 -> 75.9 % on seen categories), so one update must move the served weights substantially (half way),
    while the average over rounds still damps a single bad batch; use values near 1 for many small updates.
    ``precision`` defaults to the model's ``train.precision`` (``auto``: bf16 only where it is native).
    """

    def __init__(
        self,
        model: SCMLLM,
        lr: float = 1e-3,
        ema_decay: float = 0.5,
        steps_per_update: int = 4,
        weight_decay: float = 0.02,
        grad_clip: float = 1.0,
        precision: str | None = None,
    ) -> None:
        if steps_per_update < 1:
            raise ValueError("steps_per_update must be >= 1")
        self.model = model
        model.set_trainable("adapter")
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay)
        self.trainee = model.adapter_state_dict()
        self.ema = AdapterEMA(self.trainee, ema_decay)
        self.precision = resolve(precision or model.config.train.precision, model.device)
        self.steps_per_update, self.grad_clip = steps_per_update, grad_clip
        self.version = 0

    def update(self, samples: list[TrainingSample]) -> float:
        """``steps_per_update`` optimiser steps on ``samples``, then the EMA merge; the mean loss."""
        if not samples:
            raise ValueError("update needs at least one sample")
        m = self.model
        batch = collate([encode_sample(s, m.tokenizer, m.config) for s in samples], m)
        batch = {k: v.to(m.device) for k, v in batch.items()}
        m.load_adapter_state_dict(self.trainee)
        try:
            with torch.no_grad():  # the tower and projector are frozen: their output is the same every step
                visual = m.visual_embeds(batch["images"])
            losses = []
            m.train()
            for _ in range(self.steps_per_update):
                with autocast(self.precision, m.device):
                    logits = m.text_logits(batch["images"], batch["ids"], visual=visual)
                    loss = answer_loss(logits, batch, m, m.config.train.soft_targets)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.params, self.grad_clip)
                self.opt.step()
                losses.append(loss.item())
            self.trainee = m.adapter_state_dict()
            self.ema.update(self.trainee)
            self.version += 1
        finally:
            m.eval()
            m.load_adapter_state_dict(self.ema.state_dict())
        return float(np.mean(losses))
