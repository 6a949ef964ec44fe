"""Configuration dataclasses of SC-MLLM, serialisable to and from JSON dictionaries.

Two sizes share one code path: the defaults describe the small model that trains on a 2-core CPU
(see ``/work/shared/notes/small-model-recipe.md``); :meth:`SCMLLMConfig.paper_size` points the same
classes at a local CLIP file and a local Hugging Face LLaMA directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# OpenAI CLIP's image normalisation (open_clip.constants), used by every tower so real CLIPs just work.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CHECKER_VIEWS = ("end", "before_after", "before_after_change")


@dataclass
class VisionConfig:
    """The open_clip visual tower.

    ``kind``: ``"resnet"`` (open_clip ModifiedResNet from scratch; learns faster from scratch on little data),
    ``"vit"`` (open_clip VisionTransformer from scratch) or ``"clip"`` (a real CLIP architecture
    ``clip_model`` with weights from the local file ``clip_pretrained``; ``clip_model_config`` may name a JSON
    file with an open_clip architecture that is not built in, e.g. a test stand-in).
    """

    kind: str = "resnet"
    image_size: int = 112
    width: int = 32
    # ResNet: blocks per stage; the visual tokens are the feature map after the last listed stage
    # (3 stages at 112 px give a 7x7 grid = 49 tokens).
    layers: tuple[int, ...] = (1, 1, 1)
    patch_size: int = 16  # ViT only
    vit_layers: int = 4  # ViT only
    heads: int = 4
    clip_model: str = "ViT-L-14-336"
    clip_pretrained: str | None = None
    clip_model_config: str | None = None
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD


@dataclass
class LLMConfig:
    """``LlamaForCausalLM``: a small config built here, or a local Hugging Face directory ``path``."""

    path: str | None = None
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 688
    max_positions: int = 512
    attention_bias: bool = True  # gives LLaMA-Adapter-V2-style trainable biases to the small model


@dataclass
class AdapterConfig:
    """peft adaptation in the LLaMA-Adapter V2 spirit.

    ``kind``: ``"lora"`` (default; LoRA on the attention projections) or ``"adaption_prompt"`` (zero-init
    gated
    adaption prompts, LLaMA-Adapter).  With ``train_norms``/``train_biases`` the LLM's RMSNorm weights and
    linear
    biases are unfrozen too: together these are the "adapter" parameters that fine-tuning, online learning and
    the EMA touch.
    """

    kind: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    adapter_len: int = 10
    adapter_layers: int = 2
    train_norms: bool = True
    train_biases: bool = True


@dataclass
class TokenizerConfig:
    """Which tokenizer.

    ``kind``: ``"numbers"`` (project BPE + one token per integer, value-ordered sinusoid init, tied head),
    ``"bpe"`` (project byte-level BPE only; numbers digit by digit) or ``"pretrained"`` (the LLM directory's
    ``tokenizer.json``).
    """

    kind: str = "numbers"
    bpe_vocab_size: int = 600


@dataclass
class TrainConfig:
    """Two-stage recipe; ``stage1_steps=0`` and ``full_finetune=False`` for paper-size models."""

    stage1_steps: int = 600
    stage1_lr: float = 2e-3
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.02  # ManipLLM's value
    warmup_steps: int = 100
    grad_clip: float = 1.0
    # "auto": bf16 autocast where the device has native bf16 (AMX / AVX512-BF16 CPUs, most GPUs), fp32
    # otherwise (emulated bf16 is ~18x slower on AVX2 CPUs); "bf16" / "fp32" force it (model/precision.py).
    precision: str = "auto"
    soft_targets: bool = True
    sigma_pixel: float = 5.0  # Gaussian width of soft targets over neighbouring pixel-coordinate tokens
    sigma_direction: float = 1.0  # ... over neighbouring direction-component tokens
    full_finetune: bool = True  # small model: stage 2 trains everything (stands in for pretraining)
    seed: int = 0
    save_every: int = 250


@dataclass
class SCMLLMConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    answer_size: int = 336  # side of the paper's answer frame: contact points are integer pixels of it
    max_answer_tokens: int = 96
    # What the checker sees: "end" (the paper: the end-state image), "before_after" (the initial image's
    # visual tokens, then the end image's: a pull that moved nothing is visible as no change) or
    # "before_after_change" (also the tokens of the change image, end minus initial, through the same tower:
    # a small tower compares two images poorly, and a difference it can simply see).
    checker_views: str = "end"
    # The checker answers "success" when the probability of the success sentence among the four answers is
    # at least this; chosen on a validation split (``sc-mllm eval``), never on test scenes.
    checker_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.checker_views not in CHECKER_VIEWS:
            raise ValueError(f"checker_views must be one of {CHECKER_VIEWS}, got {self.checker_views!r}")
        if not 0.0 <= self.checker_threshold <= 1.0:
            raise ValueError(f"checker_threshold must be in [0, 1], got {self.checker_threshold}")

    @property
    def checker_sees_initial(self) -> bool:
        return self.checker_views != "end"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SCMLLMConfig:
        subs = {
            "vision": VisionConfig,
            "llm": LLMConfig,
            "adapter": AdapterConfig,
            "tokenizer": TokenizerConfig,
            "train": TrainConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in subs:
                sub = subs[key]
                if key == "train" and "bf16" in value:
                    # Checkpoints written before the choice followed the hardware had bf16 on by default.
                    value = {k: v for k, v in value.items() if k != "bf16"} | {"precision": "auto"}
                names = {f.name for f in fields(sub)}
                unknown = set(value) - names
                if unknown:
                    raise ValueError(f"unknown {key} config keys: {sorted(unknown)}")
                # JSON turns tuples into lists; dataclass defaults are tuples.
                kwargs[key] = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            elif key in {f.name for f in fields(cls)}:
                kwargs[key] = value
            else:
                raise ValueError(f"unknown config key {key!r}")
        return cls(**kwargs)

    @classmethod
    def paper_size(
        cls, clip_pretrained: str, llama_dir: str, clip_model: str = "ViT-L-14-336"
    ) -> SCMLLMConfig:
        """CLIP ViT-L/14-336 + LLaMA-7B from local files, adapters only, no stage 1."""
        return cls(
            vision=VisionConfig(
                kind="clip", clip_model=clip_model, clip_pretrained=clip_pretrained, image_size=336
            ),
            llm=LLMConfig(path=llama_dir),
            tokenizer=TokenizerConfig(kind="pretrained"),
            train=TrainConfig(stage1_steps=0, full_finetune=False, soft_targets=False, batch_size=1),
        )
