"""Exponential moving average of adapter weights: the paper's continual-learning merge."""

from __future__ import annotations

import torch


class AdapterEMA:
    """``shadow <- decay * shadow + (1 - decay) * current`` per tensor, after each online update.

    The served weights are the shadow; the learner keeps training its own copy, so the EMA is a Polyak average
    of the fine-tuning trajectory that damps any single batch (guarding against catastrophic forgetting).
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
