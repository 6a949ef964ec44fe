"""Training the position network on RGB-D images with per-pixel affordance labels (no simulator import)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sc_mllm_ros.experts.position import encode_image, PositionNet, PositionNetConfig


@dataclass
class PositionTrainConfig:
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    pos_weight: float = 3.0  # the affordance is a minority of the image's pixels
    dice_weight: float = 1.0
    seed: int = 0


@dataclass
class AffordanceData:
    """Encoded samples: inputs (N, 5, S, S) and soft targets (N, S, S) in float16, one phrase per sample."""

    x: torch.Tensor
    y: torch.Tensor
    phrases: list[str]

    def __len__(self) -> int:
        return len(self.phrases)

    @classmethod
    def encode(
        cls, samples: Iterable[tuple[np.ndarray, np.ndarray, str, np.ndarray]], config: PositionNetConfig
    ) -> AffordanceData:
        """From ``(rgb, depth, phrase, affordance)`` tuples; the masks become area-averaged soft targets."""
        xs, ys, phrases = [], [], []
        s = config.image_size
        for rgb, depth, phrase, affordance in samples:
            xs.append(encode_image(rgb, depth, s, config.depth_scale_m).half())
            mask = torch.from_numpy(np.asarray(affordance, dtype=np.float32))[None, None]
            ys.append(F.interpolate(mask, size=(s, s), mode="area")[0, 0].half())
            phrases.append(phrase)
        if not xs:
            raise ValueError("no training samples")
        return cls(torch.stack(xs), torch.stack(ys), phrases)


def affordance_loss(logits: torch.Tensor, target: torch.Tensor, cfg: PositionTrainConfig) -> torch.Tensor:
    """Weighted per-pixel BCE plus a soft Dice term (keeps small parts from vanishing in the average)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(cfg.pos_weight))
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)
    return bce + cfg.dice_weight * dice.mean()


def train_position_net(
    net: PositionNet, data: AffordanceData, cfg: PositionTrainConfig, progress: bool = True
) -> dict[str, float]:
    """Train ``net`` in place; returns the final loss and the measured steps per second."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def schedule(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    net.train()
    losses: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="position expert", disable=not progress)
    for _ in bar:
        idx = torch.randint(len(data), (cfg.batch_size,), generator=gen)
        x = data.x[idx].float()
        # Brightness and contrast jitter: colours and lighting differ between cells.
        gain = 1 + 0.2 * (torch.rand(len(idx), 1, 1, 1, generator=gen) - 0.5)
        shift = 0.4 * (torch.rand(len(idx), 1, 1, 1, generator=gen) - 0.5)
        x[:, :3] = x[:, :3] * gain + shift
        tokens, offsets = net.batch_tokens([data.phrases[i] for i in idx.tolist()])
        loss = affordance_loss(net(x, tokens, offsets), data.y[idx].float(), cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    seconds = time.perf_counter() - t0
    net.eval()
    return {
        "final_loss": float(np.mean(losses[-50:])),
        "seconds": seconds,
        "steps_per_s": cfg.steps / seconds,
    }
