"""open_clip visual towers that return a grid of visual tokens, and the stage-1 regression head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
from open_clip.model import ModifiedResNet
from open_clip.transformer import VisionTransformer
import torch
from torch import nn

from sc_mllm_ros.model.config import VisionConfig


class VisionTower(nn.Module):
    """Image batch (B, 3, S, S), CLIP-normalised -> visual tokens (B, N, C)."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.kind = cfg.kind
        if cfg.kind == "resnet":
            n = len(cfg.layers)
            if not 1 <= n <= 4:
                raise ValueError(f"a ResNet tower has 1 to 4 stages, got layers={cfg.layers}")
            layers = list(cfg.layers) + [1] * (4 - n)
            net = ModifiedResNet(
                layers, output_dim=cfg.width * 8, heads=cfg.heads, image_size=cfg.image_size, width=cfg.width
            )
            # Keep the stem and the stages we use; the attention pool is replaced by per-cell tokens.
            self.stages = nn.ModuleList([getattr(net, f"layer{i + 1}") for i in range(n)])
            net.attnpool = None
            for i in range(n, 4):
                setattr(net, f"layer{i + 1}", None)
            self.net = net
            self.out_dim = cfg.width * 4 * 2 ** (n - 1)
            grid = cfg.image_size // 4 // 2 ** (n - 1)
        elif cfg.kind == "vit":
            self.net = VisionTransformer(
                image_size=cfg.image_size,
                patch_size=cfg.patch_size,
                width=cfg.width * 8,
                layers=cfg.vit_layers,
                heads=cfg.heads,
                mlp_ratio=4.0,
                output_dim=cfg.width * 8,
                output_tokens=True,
            )
            self.out_dim = cfg.width * 8
            grid = cfg.image_size // cfg.patch_size
        elif cfg.kind == "clip":
            self.net = load_clip_visual(cfg)
            self.net.output_tokens = True
            self.out_dim = (
                self.net.transformer.width if hasattr(self.net, "transformer") else self.net.output_dim
            )
            grid = (
                cfg.image_size // cfg.patch_size
                if not hasattr(self.net, "grid_size")
                else self.net.grid_size[0]
            )
        else:
            raise ValueError(f"unknown vision tower kind {cfg.kind!r}; expected 'resnet', 'vit' or 'clip'")
        self.grid = int(grid)
        self.num_tokens = self.grid * self.grid

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.kind == "resnet":
            x = self.net.stem(images.to(self.net.conv1.weight.dtype))
            for stage in self.stages:
                x = stage(x)
            return x.flatten(2).transpose(1, 2)
        _, tokens = self.net(images)
        return tokens


def load_clip_visual(cfg: VisionConfig) -> nn.Module:
    """A real CLIP's visual tower from a local file (no download is ever attempted)."""
    if cfg.clip_model_config is not None:
        arch = json.loads(Path(cfg.clip_model_config).read_text())
        open_clip.factory._MODEL_CONFIGS[cfg.clip_model] = arch  # register the architecture under its name
    if cfg.clip_pretrained is not None and not Path(cfg.clip_pretrained).is_file():
        raise ValueError(
            f"CLIP weights file {cfg.clip_pretrained} does not exist (weights are never downloaded)"
        )
    model = open_clip.create_model(cfg.clip_model, pretrained=cfg.clip_pretrained)
    return model.visual


class Projector(nn.Module):
    """Visual tokens -> LLM embedding width (2-layer MLP) plus a learned per-token position embedding."""

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        self.pos = nn.Parameter(torch.zeros(num_tokens, out_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(tokens) + self.pos


class RegressionHead(nn.Module):
    """Stage 1: regress the pose labels straight from the visual tokens (the small model's CLIP pretraining).

    Contact = soft-argmax over the token grid (cell centre + learned offset), in the answer frame normalised
    to
    [0, 1]; up and forward from an attention-pooled feature.
    """

    def __init__(self, dim: int, grid: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.offset = nn.Linear(dim, 2)
        self.dirs = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 6))
        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")
        self.register_buffer("centres", torch.stack([cy.flatten(), cx.flatten()], dim=1), persistent=False)
        self.cell = 1.0 / grid

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.score(tokens).squeeze(-1).float().softmax(dim=1)  # (B, N)
        pts = self.centres + torch.tanh(self.offset(tokens).float()) * self.cell
        contact = torch.einsum("bn,bnk->bk", w, pts)
        pooled = torch.einsum("bn,bnc->bc", w.to(tokens.dtype), tokens)
        return contact, self.dirs(pooled).float()


# The change image doubles colour differences: a door that swung a few degrees still stands out from 0.
CHANGE_GAIN = 2


def change_image(initial: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """uint8 image(s) of ``end - initial`` around grey 128 (x ``CHANGE_GAIN``, clipped); no change is grey."""
    diff = (end.to(torch.int16) - initial.to(torch.int16)) * CHANGE_GAIN + 128
    return diff.clamp(0, 255).to(torch.uint8)


def preprocess(rgb: np.ndarray, cfg: VisionConfig) -> torch.Tensor:
    """uint8 HxWx3 RGB of any size -> uint8 (3, S, S) tensor (resized; normalisation happens in the model)."""
    import cv2

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an HxWx3 array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    s = cfg.image_size
    if rgb.shape[:2] != (s, s):
        interp = cv2.INTER_AREA if min(rgb.shape[:2]) > s else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (s, s), interpolation=interp)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
