"""The position expert (a Where2Act stand-in): a small U-Net on RGB-D that predicts per-pixel pull success.

The network is conditioned on the task's part phrase ("top drawer", "oven door") through FiLM: the phrase's
words and word pairs are hashed into a learned ``EmbeddingBag`` (unseen words get their own, untrained,
buckets; known words such as "door" or "lid" carry over to unseen objects), so the part is found from the
image, never from a simulator mask.  Point selection: the success map is smoothed, pixels without depth are
ruled out (a hint must lift to 3D), and the ``top_k`` best points at least ``nms_radius_px`` apart are kept
(greedy disk suppression, the usual non-maximum suppression on a score map); the hint is the best one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import zlib

from huggingface_hub import PyTorchModelHubMixin
import numpy as np
from scipy.ndimage import gaussian_filter
import torch
from torch import nn
import torch.nn.functional as F

from sc_mllm_ros.experts.rotation import ExpertError

# Where `sc-mllm train-experts` writes the shipped weights (config.json, model.safetensors, README.md card).
DEFAULT_EXPERTS = Path(__file__).resolve().parent.parent / "assets" / "experts"
IN_CHANNELS = 5  # RGB, depth relative to the image's median, depth validity


@dataclass
class PositionNetConfig:
    image_size: int = 112
    widths: tuple[int, ...] = (16, 32, 64, 128)
    text_buckets: int = 1024
    text_dim: int = 64
    depth_scale_m: float = 0.25  # relative depth is divided by this
    smooth_sigma_px: float = 1.5  # at image_size
    nms_radius_px: int = 8  # at image_size
    top_k: int = 5


def phrase_tokens(phrase: str, buckets: int) -> list[int]:
    """Hashed ids of the phrase's lower-case words and adjacent word pairs (stable across processes)."""
    words = phrase.lower().replace("_", " ").replace("-", " ").split()
    if not words:
        raise ExpertError("the part phrase is empty; name the part, e.g. 'top drawer'")
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return [zlib.crc32(g.encode()) % buckets for g in grams]


def encode_image(rgb: np.ndarray, depth: np.ndarray, size: int, depth_scale_m: float) -> torch.Tensor:
    """RGB-D (any resolution) -> the network's (5, size, size) input; NaN depth is averaged around."""
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    d = torch.from_numpy(np.asarray(depth, dtype=np.float32)).unsqueeze(0).unsqueeze(0)
    valid = torch.isfinite(d) & (d > 0)
    d = torch.where(valid, d, torch.zeros_like(d))
    rgb_s = F.interpolate(rgb_t, size=(size, size), mode="area")
    v_s = F.interpolate(valid.float(), size=(size, size), mode="area")
    d_s = F.interpolate(d, size=(size, size), mode="area") / v_s.clamp_min(1e-6)
    med = d[valid].median() if bool(valid.any()) else torch.tensor(1.0)
    rel = torch.where(v_s > 0.5, (d_s - med) / depth_scale_m, torch.zeros_like(d_s))
    return torch.cat([(rgb_s - 0.5) / 0.25, rel, (v_s > 0.5).float()], dim=1)[0]


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(4, cout), nn.SiLU())


class PositionNet(nn.Module, PyTorchModelHubMixin):
    """U-Net: RGB-D (B, 5, S, S) + part phrase -> pull-success logits (B, S, S).

    A stride-2 stem puts the finest level at S/2 (the logits are upsampled back): at 112 px this keeps a
    batch-16 training step well under a second on 2 CPU cores.  Levels get one convolution at the two finest
    resolutions and two below, where most of the ~0.5 M parameters sit.  ``save_pretrained(dir)`` and
    ``from_pretrained(dir)`` (huggingface_hub's mixin) write and read config.json and model.safetensors.
    """

    def __init__(self, config: PositionNetConfig | dict):
        super().__init__()
        if isinstance(config, dict):  # from_pretrained passes config.json's dictionary
            config = PositionNetConfig(**{**config, "widths": tuple(config["widths"])})
        levels = len(config.widths)
        if config.image_size % 2**levels:
            raise ValueError(f"image_size {config.image_size} must divide by 2^{levels}")
        self.config = config
        w = list(config.widths)
        self.stem = _conv(IN_CHANNELS, w[0], stride=2)
        # Stride-2 convolutions downsample (cheaper than max pooling on CPU).
        self.down = nn.ModuleList(
            _conv(cin, cout, 1 if i == 0 else 2)
            if i < 2
            else nn.Sequential(_conv(cin, cout, 2), _conv(cout, cout))
            for i, (cin, cout) in enumerate(zip([w[0], *w[:-1]], w))
        )
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in range(levels - 1))
        self.merge = nn.ModuleList(_conv(2 * w[i], w[i]) for i in range(levels - 1))
        self.text = nn.EmbeddingBag(config.text_buckets, config.text_dim, mode="mean")
        # FiLM (scale, shift) for the bottleneck and every decoder stage, zero at init (a plain U-Net).
        self.film_sizes = [w[-1], *reversed(w[:-1])]
        self.film = nn.Linear(config.text_dim, 2 * sum(self.film_sizes))
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        sizes = [s for s in self.film_sizes for _ in (0, 1)]  # (scale, shift) per stage
        films = self.film(self.text(tokens, offsets)).split(sizes, dim=1)

        def modulate(h: torch.Tensor, i: int) -> torch.Tensor:
            return h * (1 + films[2 * i][:, :, None, None]) + films[2 * i + 1][:, :, None, None]

        size = x.shape[-2:]
        x = self.stem(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = modulate(skips.pop(), 0)
        for j, i in enumerate(reversed(range(len(self.up)))):
            x = modulate(self.merge[i](torch.cat([self.up[i](x), skips.pop()], dim=1)), j + 1)
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)[:, 0]

    def batch_tokens(self, phrases: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``EmbeddingBag`` inputs (flat token ids, offsets) for a batch of part phrases."""
        ids = [phrase_tokens(p, self.config.text_buckets) for p in phrases]
        offsets = np.cumsum([0] + [len(t) for t in ids[:-1]])
        return torch.tensor([t for ts in ids for t in ts]), torch.tensor(offsets)


def select_points(
    score: np.ndarray, k: int, radius: float, sigma: float, allowed: np.ndarray | None = None
) -> list[tuple[int, int, float]]:
    """Up to ``k`` (row, col, score) peaks of the smoothed ``score``, best first, >= ``radius`` apart.

    ``allowed`` (bool, same shape) rules pixels out, e.g. those without depth.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    s = gaussian_filter(np.asarray(score, dtype=np.float64), sigma) if sigma > 0 else np.array(score, float)
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    rows, cols = np.indices(s.shape)
    out = []
    for _ in range(k):
        i = int(np.argmax(s))
        r, c = divmod(i, s.shape[1])
        if not np.isfinite(s[r, c]):
            break
        out.append((r, c, float(s[r, c])))
        s[(rows - r) ** 2 + (cols - c) ** 2 < radius**2] = -np.inf
    return out


@dataclass(frozen=True)
class PositionHint:
    """Candidate contact pixels (row, col) of the input image, best first, and their smoothed success."""

    pixels: tuple[tuple[float, float], ...]
    scores: tuple[float, ...]
    success_map: np.ndarray  # (S, S) predicted pull-success probability at the network's resolution


class PositionExpert:
    """Runs a :class:`PositionNet` and selects candidate contact points."""

    def __init__(self, net: PositionNet):
        self.net = net.eval()
        self.config = net.config

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> PositionExpert:
        """The weights in ``path``; ``None`` or ``""``: the shipped ones (:data:`DEFAULT_EXPERTS`)."""
        path = Path(path) if path else DEFAULT_EXPERTS
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"no position-expert weights in {path}; train them with `sc-mllm train-experts --out {path}`"
            )
        return cls(PositionNet.from_pretrained(path))

    @torch.inference_mode()
    def success_map(self, rgb: np.ndarray, depth: np.ndarray, phrase: str) -> np.ndarray:
        """Predicted pull-success probability (S, S) for the part named by ``phrase``."""
        cfg = self.config
        x = encode_image(rgb, depth, cfg.image_size, cfg.depth_scale_m).unsqueeze(0)
        tokens, offsets = self.net.batch_tokens([phrase])
        return torch.sigmoid(self.net(x, tokens, offsets))[0].numpy()

    def hint(self, rgb: np.ndarray, depth: np.ndarray, phrase: str, k: int | None = None) -> PositionHint:
        """The ``k`` (default ``config.top_k``) best contact candidates in the input image's pixels."""
        cfg = self.config
        prob = self.success_map(rgb, depth, phrase)
        h, w = np.asarray(depth).shape
        s = cfg.image_size
        # A candidate needs depth at the pixel it lands on in the full-resolution image.
        r_full = np.clip(((np.arange(s) + 0.5) * h / s).astype(int), 0, h - 1)
        c_full = np.clip(((np.arange(s) + 0.5) * w / s).astype(int), 0, w - 1)
        d = np.asarray(depth)[np.ix_(r_full, c_full)]
        allowed = np.isfinite(d) & (d > 0)
        if not allowed.any():
            raise ExpertError("the depth image has no valid pixel; no contact point can be lifted to 3D")
        peaks = select_points(prob, k or cfg.top_k, cfg.nms_radius_px, cfg.smooth_sigma_px, allowed)
        pixels = tuple(((r + 0.5) * h / s - 0.5, (c + 0.5) * w / s - 0.5) for r, c, _ in peaks)
        return PositionHint(pixels=pixels, scores=tuple(p[2] for p in peaks), success_map=prob)
