"""SCMLLM: open_clip visual tower -> projector -> LlamaForCausalLM with peft adapters; the runtime API."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import peft
from peft.utils import (
    CONFIG_NAME,
    get_peft_model_state_dict,
    SAFETENSORS_WEIGHTS_NAME,
    set_peft_model_state_dict,
)
from safetensors.torch import load_file, save_file
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from sc_mllm_ros.model.checkpoint import atomic_write_dir, dedup_shared
from sc_mllm_ros.model.codec import FailureAnswer, PoseAnswer
from sc_mllm_ros.model.config import SCMLLMConfig
from sc_mllm_ros.model.data import prompt_values
from sc_mllm_ros.model.decoding import AnswerConstraint, decode_prefilled, decode_tokenwise
from sc_mllm_ros.model.lean import KVCache, LeanLlama
from sc_mllm_ros.model.prompts import answer_segments, CAUSES, FAILURE_ANSWERS, prompt_segments
from sc_mllm_ros.model.tokenizer import SCTokenizer
from sc_mllm_ros.model.vision import change_image, preprocess, Projector, RegressionHead, VisionTower

MODEL_TYPE = "sc_mllm"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
# config.json keys beside the SCMLLMConfig fields (Hugging Face style: model type and special token ids)
_NON_CONFIG_KEYS = ("model_type", "bos_token_id", "eos_token_id", "pad_token_id", "number_tokens")


def resolve_pretrained(path: str | Path | None) -> Path | None:
    """``path``, or the shipped small model when ``path`` is empty; None when neither exists."""
    from sc_mllm_ros.assets import DEFAULT_MODEL

    if path:
        return Path(path)
    return DEFAULT_MODEL if DEFAULT_MODEL.is_dir() else None


def _build_tokenizer(cfg: SCMLLMConfig) -> SCTokenizer:
    if cfg.tokenizer.kind == "pretrained":
        if cfg.llm.path is None:
            raise ValueError("tokenizer kind 'pretrained' needs llm.path (a local Hugging Face directory)")
        return SCTokenizer.from_hf_dir(cfg.llm.path)
    return SCTokenizer.build(cfg.tokenizer.kind, cfg.tokenizer.bpe_vocab_size, answer_size=cfg.answer_size)


class SCMLLM(nn.Module):
    """The self-correcting multimodal LLM.

    ``SCMLLM(config)`` builds it (random small model, or the local CLIP and LLaMA files the config
    names).  It holds no lock: one caller at a time (the model host's ``ModelServer`` serialises serving
    and adapter swaps).
    """

    def __init__(self, config: SCMLLMConfig | None = None, tokenizer: SCTokenizer | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SCMLLMConfig()
        self.tokenizer = tok = tokenizer or _build_tokenizer(cfg)
        self.tower = VisionTower(cfg.vision)
        if cfg.llm.path is not None:
            llm = LlamaForCausalLM.from_pretrained(cfg.llm.path)
        else:
            llm = LlamaForCausalLM(
                LlamaConfig(
                    vocab_size=tok.vocab_size,
                    hidden_size=cfg.llm.hidden_size,
                    intermediate_size=cfg.llm.intermediate_size,
                    num_hidden_layers=cfg.llm.num_layers,
                    num_attention_heads=cfg.llm.num_heads,
                    num_key_value_heads=cfg.llm.num_heads,
                    max_position_embeddings=cfg.llm.max_positions,
                    attention_bias=cfg.llm.attention_bias,
                    tie_word_embeddings=True,
                    bos_token_id=tok.bos_id,
                    eos_token_id=tok.eos_id,
                    pad_token_id=tok.pad_id,
                )
            )
            if tok.has_number_tokens:
                self._init_number_embeddings(llm)
        if llm.get_input_embeddings().weight.shape[0] < tok.vocab_size:
            raise ValueError(
                f"the LLM's vocabulary ({llm.get_input_embeddings().weight.shape[0]}) is smaller than "
                f"the tokenizer's ({tok.vocab_size})"
            )
        self.dim = llm.config.hidden_size
        self.projector = Projector(self.tower.out_dim, self.dim, self.tower.num_tokens)
        self.head = RegressionHead(self.tower.out_dim, self.tower.grid)
        self.llm = self._wrap_adapters(llm)
        # The serving forward (merged LoRA, static cache); None where the adapter kind needs Hugging Face's.
        self.lean = LeanLlama(self.llm) if LeanLlama.supports(self.llm) else None
        self.register_buffer("mean", torch.tensor(cfg.vision.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.vision.std).view(1, 3, 1, 1), persistent=False)
        self.set_trainable("adapter")
        self.eval()

    # -- construction -------------------------------------------------------------------------------------
    def _init_number_embeddings(self, llm: LlamaForCausalLM) -> None:
        """Value-ordered sinusoid embeddings for the number tokens (tied with the output head)."""
        tok = self.tokenizer
        values = torch.arange(tok.number_lo, tok.number_hi + 1, dtype=torch.float32)
        d = llm.config.hidden_size
        freqs = torch.exp(-torch.arange(d // 2, dtype=torch.float32) / (d // 2) * math.log(500.0))
        ang = values[:, None] * freqs[None, :]
        emb = torch.cat([ang.sin(), ang.cos()], dim=1) * (0.02 * math.sqrt(2.0))
        with torch.no_grad():
            w = llm.get_input_embeddings().weight
            w[tok.number_first_id : tok.number_first_id + len(values), : emb.shape[1]] = emb

    def _wrap_adapters(self, llm: LlamaForCausalLM) -> nn.Module:
        a = self.config.adapter
        if a.kind == "lora":
            pc = peft.LoraConfig(
                r=a.lora_r,
                lora_alpha=a.lora_alpha,
                target_modules=list(a.lora_targets),
                lora_dropout=0.0,
                bias="all" if a.train_biases else "none",  # peft then saves and loads the biases too
            )
        elif a.kind == "adaption_prompt":
            pc = peft.AdaptionPromptConfig(
                adapter_len=a.adapter_len,
                adapter_layers=min(a.adapter_layers, llm.config.num_hidden_layers),
                task_type="CAUSAL_LM",
            )
        else:
            raise ValueError(f"unknown adapter kind {a.kind!r}; expected 'lora' or 'adaption_prompt'")
        return peft.get_peft_model(llm, pc)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def base_llm(self) -> LlamaForCausalLM:
        """The underlying LlamaForCausalLM (adapters injected in place)."""
        return self.llm.get_base_model()

    # -- which parameters train ------------------------------------------------------------------------------
    def is_adapter_param(self, name: str) -> bool:
        if not name.startswith("llm."):
            return False
        a = self.config.adapter
        return (
            "lora_" in name
            or "adaption_" in name
            or (a.train_norms and "norm" in name)
            or (a.train_biases and name.endswith(".bias"))
        )

    def set_trainable(self, what: str) -> None:
        """``"all"`` (small-model pretraining), ``"adapter"`` (fine-tuning, online) or ``"vision"``."""
        if what not in ("all", "adapter", "vision"):
            raise ValueError(f"set_trainable expects 'all', 'adapter' or 'vision', got {what!r}")
        for name, p in self.named_parameters():
            if what == "all":
                p.requires_grad_(True)
            elif what == "vision":
                p.requires_grad_(name.startswith(("tower.", "head.")))
            else:
                p.requires_grad_(self.is_adapter_param(name))

    def trainable_summary(self) -> str:
        groups: dict[str, list[int]] = {}
        total = trainable = 0
        for name, p in self.named_parameters():
            total += p.numel()
            if p.requires_grad:
                trainable += p.numel()
                kind = (
                    "lora"
                    if "lora_" in name
                    else "adaption prompt"
                    if "adaption_" in name
                    else "norm"
                    if "norm" in name and name.startswith("llm.")
                    else "bias"
                    if name.endswith(".bias") and name.startswith("llm.")
                    else name.split(".")[0]
                )
                g = groups.setdefault(kind, [0, 0])
                g[0] += 1
                g[1] += p.numel()
        parts = ", ".join(f"{k}: {n} tensors / {c:,}" for k, (n, c) in sorted(groups.items()))
        share = 100 * trainable / max(total, 1)
        return f"trainable {trainable:,} of {total:,} parameters ({share:.2f}%) [{parts}]"

    # -- forward ------------------------------------------------------------------------------------------
    def visual_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> (B, N, D) visual tokens in the LLM embedding space."""
        return self.projector(self.visual_tokens(images))

    def visual_tokens(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.to(self.device, self.mean.dtype) / 255.0 - self.mean) / self.std
        return self.tower(x)

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(ids.to(self.device))

    def views_embeds(self, images: torch.Tensor, initial: torch.Tensor | None = None) -> torch.Tensor:
        """Visual tokens of ``images`` (B, 3, S, S), after those of the ``initial`` images when given.

        A ``before_after_change`` checker also sees the change image (:func:`change_image`) last.
        """
        if initial is None:
            return self.visual_embeds(images)
        views = [initial, images]
        if self.config.checker_views == "before_after_change":
            views.append(change_image(initial, images))
        return (
            self.visual_embeds(torch.cat(views))
            .view(len(views), images.shape[0], -1, self.dim)
            .transpose(0, 1)
            .reshape(images.shape[0], -1, self.dim)
        )

    def prefix_embeds(
        self, images: torch.Tensor, prompt_ids: list[int], initial: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[BOS][visual tokens (of ``initial``, then of ``images``)][prompt] for one image (1, 3, S, S)."""
        vis = self.views_embeds(images, initial)
        bos = self.embed_ids(torch.tensor([[self.tokenizer.bos_id]]))
        prompt = self.embed_ids(torch.tensor([prompt_ids], dtype=torch.long))
        return torch.cat([bos, vis.to(bos.dtype), prompt], dim=1)

    def text_logits(
        self,
        images: torch.Tensor,
        ids: torch.Tensor,
        visual: torch.Tensor | None = None,
        initial: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training forward: logits (B, T, V) predicting ``ids`` (right-padded prompt+answer) after the image.

        Right padding needs no attention mask: causal attention never lets a real token see a later pad.
        ``visual`` may pass ``visual_embeds(images)`` computed once when the tower is frozen; ``initial``:
        the before images of a before/after checker batch.
        """
        b, t = ids.shape
        vis = self.views_embeds(images, initial) if visual is None else visual
        bos = self.embed_ids(torch.full((b, 1), self.tokenizer.bos_id, dtype=torch.long))
        emb = torch.cat([bos, vis.to(bos.dtype), self.embed_ids(ids)], dim=1)
        # The head only on the positions that predict ``ids`` (not on the visual tokens).
        logits = self.base_llm(inputs_embeds=emb, use_cache=False, logits_to_keep=t + 1).logits
        return logits[:, :t]

    def _reference_step(self, prefix: torch.Tensor | None, new_ids: list[int], cache: object):
        """A decoding pass through Hugging Face's forward and peft's LoRA modules (what training computes)."""
        out = self.base_llm(
            inputs_embeds=self._step_embeds(prefix, new_ids), cache=cache, use_cache=True, logits_to_keep=1
        )
        return out.logits[0, -1].float(), out.cache

    def _lean_step(self, prefix: torch.Tensor | None, new_ids: list[int], cache: KVCache | None):
        """The same pass through :class:`LeanLlama` (merged LoRA, static cache): ~5x less Python."""
        emb = self._step_embeds(prefix, new_ids)
        if cache is None:
            cache = self.lean.new_cache(1, emb.shape[1] + self.config.max_answer_tokens)
        return self.lean.forward(emb, cache)[0].float(), cache

    def _step_embeds(self, prefix: torch.Tensor | None, new_ids: list[int]) -> torch.Tensor:
        parts = [] if prefix is None else [prefix]
        if new_ids:
            parts.append(self.embed_ids(torch.tensor([new_ids], dtype=torch.long)))
        return torch.cat(parts, dim=1)

    # -- runtime API --------------------------------------------------------------------------------------
    def _answer(self, family: str, rgb: np.ndarray, values: dict[str, object], method: str = "prefilled"):
        return self.decode(
            preprocess(rgb, self.config.vision), self._prompt_ids(family, values), family, method
        )

    def _prompt_ids(self, family: str, values: dict[str, object]) -> list[int]:
        return self.tokenizer.encode_segments(prompt_segments(family, self.config.answer_size), values)[0]

    @property
    def checker_sees_initial(self) -> bool:
        return self.config.checker_sees_initial

    def decode(
        self, image: torch.Tensor, prompt_ids: list[int], family: str, method: str = "prefilled"
    ) -> tuple[AnswerConstraint, int]:
        """Constrained greedy answer for a preprocessed uint8 (3, S, S) image.

        Returns the finished constraint (``.values`` holds the slot values, ``.tokens`` the ids) and the
        number of forward passes.  ``tokenwise`` is the reference: one pass per token through Hugging
        Face's forward; ``prefilled`` is the serving path (forced text batched, :class:`LeanLlama` passes).
        """
        if method not in ("prefilled", "tokenwise"):
            raise ValueError(f"decoding method must be 'prefilled' or 'tokenwise', got {method!r}")
        constraint = AnswerConstraint(answer_segments(family, self.config.answer_size), self.tokenizer)
        if method == "tokenwise":
            decode, step = decode_tokenwise, self._reference_step
        else:
            decode, step = decode_prefilled, self._reference_step if self.lean is None else self._lean_step
        with torch.inference_mode():
            passes = decode(step, self.prefix_embeds(image[None], prompt_ids), constraint)
        return constraint, passes

    def predict_pose(self, rgb: np.ndarray, object_name: str, method: str = "prefilled") -> PoseAnswer:
        """Contact point and gripper orientation for pulling ``object_name`` in ``rgb`` (uint8 HxWx3)."""
        hw = np.asarray(rgb).shape[:2]
        c, passes = self._answer(
            "pose", rgb, prompt_values("pose", object_name, hw, self.config.answer_size), method
        )
        return PoseAnswer.from_values(c.values, hw, self.config.answer_size, passes)

    def detect_failure(
        self,
        end_rgb: np.ndarray,
        object_name: str,
        contact: tuple[float, float],
        up: np.ndarray,
        forward: np.ndarray,
        initial_rgb: np.ndarray | None = None,
        threshold: float | None = None,
    ) -> FailureAnswer:
        """Failure cause from the end-state image and the executed end-effector parameters.

        The four answers are scored whole (teacher-forced, with EOS) and normalised over the four: the
        success sentence's share is the confidence; below ``threshold`` (default
        ``config.checker_threshold``) the answer is the most probable failure cause. A ``before_after``
        checker also needs ``initial_rgb``, the image the attempt was predicted from.
        """
        hw = np.asarray(end_rgb).shape[:2]
        values = prompt_values("failure", object_name, hw, self.config.answer_size, contact, up, forward)
        initial = None
        if self.checker_sees_initial:
            if initial_rgb is None:
                raise ValueError("this checker compares before and after: it needs the initial image too")
            initial = preprocess(initial_rgb, self.config.vision)
        image = preprocess(end_rgb, self.config.vision)
        return self.check(image, self._prompt_ids("failure", values), initial, threshold)

    def check(
        self,
        image: torch.Tensor,
        prompt_ids: list[int],
        initial: torch.Tensor | None = None,
        threshold: float | None = None,
    ) -> FailureAnswer:
        """The failure answer for a preprocessed uint8 (3, S, S) end image (and initial image)."""
        with torch.inference_mode():
            prefix = self.prefix_embeds(image[None], prompt_ids, None if initial is None else initial[None])
            probs = self._choice_probabilities(prefix, [FAILURE_ANSWERS[c] for c in CAUSES])
        p = dict(zip(CAUSES, probs))
        limit = self.config.checker_threshold if threshold is None else threshold
        cause = "success" if p["success"] >= limit else max((c for c in CAUSES if c != "success"), key=p.get)
        return FailureAnswer(
            cause=cause,
            text=FAILURE_ANSWERS[cause],
            forward_passes=2,
            success_probability=p["success"],
            probabilities=p,
        )

    def _choice_probabilities(self, prefix: torch.Tensor, texts: list[str]) -> list[float]:
        """P(text + EOS | prefix) for each text, normalised over ``texts``: two forward passes in all."""
        tok = self.tokenizer
        alts = [[*tok.encode_text(t), tok.eos_id] for t in texts]
        n, longest = len(alts), max(len(a) for a in alts)
        ids = torch.full((n, longest), tok.pad_id, dtype=torch.long)
        for i, a in enumerate(alts):
            ids[i, : len(a)] = torch.tensor(a)
        # Right padding: a real token never attends to a later pad, so the scores of real tokens are exact.
        rest_embeds = self.embed_ids(ids[:, :-1])
        if self.lean is None:
            out = self.base_llm(inputs_embeds=prefix, use_cache=True, logits_to_keep=1)
            first, cache = out.logits[0, -1], out.cache
            cache.batch_repeat_interleave(n)
            rest = self.base_llm(inputs_embeds=rest_embeds, cache=cache, use_cache=False).logits
        else:
            cache = self.lean.new_cache(1, prefix.shape[1] + longest)
            first = self.lean.forward(prefix, cache)[0]
            rest = self.lean.forward(rest_embeds, cache.repeat(n), last_only=False)
        first = first.float().log_softmax(-1)
        lp = rest.float().log_softmax(-1)
        scores = torch.stack(
            [
                first[a[0]] + lp[i, torch.arange(len(a) - 1), torch.tensor(a[1:])].sum()
                for i, a in enumerate(alts)
            ]
        )
        return scores.softmax(0).tolist()

    def correct(
        self,
        rgb: np.ndarray,
        object_name: str,
        hint_contact: tuple[float, float],
        hint_up: np.ndarray,
        hint_forward: np.ndarray,
        method: str = "prefilled",
    ) -> PoseAnswer:
        """A new pose from the initial image and expert hints (pixels of ``rgb``)."""
        hw = np.asarray(rgb).shape[:2]
        values = prompt_values(
            "correction", object_name, hw, self.config.answer_size, hint_contact, hint_up, hint_forward
        )
        c, passes = self._answer("correction", rgb, values, method)
        return PoseAnswer.from_values(c.values, hw, self.config.answer_size, passes)

    # -- adapters -----------------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """A detached copy of the adapter parameters (what fine-tuning, online learning and the EMA touch)."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if self.is_adapter_param(n)}

    def load_adapter_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        own = dict(self.named_parameters())
        expected = {n for n in own if self.is_adapter_param(n)}
        if set(sd) != expected:
            missing, extra = sorted(expected - set(sd)), sorted(set(sd) - expected)
            raise ValueError(f"adapter state mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
        with torch.no_grad():
            for n, t in sd.items():
                if own[n].shape != t.shape:
                    raise ValueError(f"adapter tensor {n}: shape {tuple(t.shape)} != {tuple(own[n].shape)}")
                own[n].copy_(t)

    def _adapter_file_state(self) -> dict[str, torch.Tensor]:
        """The adapter under peft's saved names: peft's own (LoRA, adaption prompt, biases) + the norms."""
        state = get_peft_model_state_dict(self.llm)
        for name, p in self.named_parameters():
            if self.is_adapter_param(name) and "lora_" not in name and "adaption_" not in name:
                state[name.removeprefix("llm.")] = p
        return {k: v.detach().contiguous() for k, v in state.items()}

    def save_adapter(self, path: str | Path) -> None:
        """The adapter as a peft directory (``adapter_config.json`` + ``adapter_model.safetensors``); atomic.

        ``PeftModel.from_pretrained(llama, path)`` loads it onto the plain LLM (norm weights included: peft
        loads every key it is given).
        """
        state = {k: v.clone() for k, v in self._adapter_file_state().items()}

        def write(tmp: Path) -> None:
            self.llm.peft_config["default"].save_pretrained(str(tmp))
            save_file(state, str(tmp / SAFETENSORS_WEIGHTS_NAME), metadata={"format": "pt"})

        atomic_write_dir(path, write)

    def load_adapter(self, path: str | Path) -> None:
        """Load a directory written by :meth:`save_adapter` (or any peft directory of the same adapter)."""
        path = Path(path)
        if not (path / CONFIG_NAME).is_file() or not (path / SAFETENSORS_WEIGHTS_NAME).is_file():
            raise ValueError(f"{path} is not a peft adapter directory (no adapter config + weights)")
        state = load_file(str(path / SAFETENSORS_WEIGHTS_NAME))
        own = self._adapter_file_state()
        if set(state) != set(own):
            missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
            raise ValueError(f"adapter mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
        for k, t in state.items():
            if own[k].shape != t.shape:
                raise ValueError(f"adapter tensor {k}: shape {tuple(t.shape)} != {tuple(own[k].shape)}")
        with torch.no_grad():
            set_peft_model_state_dict(self.llm, state)

    # -- checkpoints --------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """``config.json`` (the source of truth), ``tokenizer.json`` and ``model.safetensors``; atomic."""
        state, _ = dedup_shared(self.state_dict())
        state = {k: v.clone() for k, v in state.items()}
        tok = self.tokenizer
        config = {
            "model_type": MODEL_TYPE,
            **self.config.to_dict(),
            "bos_token_id": tok.bos_id,
            "eos_token_id": tok.eos_id,
            "pad_token_id": tok.pad_id,
            "number_tokens": None
            if tok.number_first_id is None
            else {"first_id": tok.number_first_id, "lo": tok.number_lo, "hi": tok.number_hi},
        }

        def write(tmp: Path) -> None:
            save_file(state, str(tmp / MODEL_FILE), metadata={"format": "pt"})
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
            tok.tok.save(str(tmp / TOKENIZER_FILE), pretty=True)

        atomic_write_dir(path, write)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str = "cpu") -> SCMLLM:
        """The model saved in folder ``path``.

        ``None`` or ``""``: the shipped small model (random init if the package has none).
        """
        path = resolve_pretrained(path)
        if path is None:
            return cls(SCMLLMConfig()).to(device)
        file = path / CONFIG_FILE
        if not file.is_file():
            raise FileNotFoundError(f"{path} has no {CONFIG_FILE}: not a saved SC-MLLM")
        d = json.loads(file.read_text())
        if d.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{file}: model_type {d.get('model_type')!r}, expected {MODEL_TYPE!r}")
        config = SCMLLMConfig.from_dict({k: v for k, v in d.items() if k not in _NON_CONFIG_KEYS})
        model = cls(config, SCTokenizer.from_hf_dir(path))
        model.load_full_state(load_file(str(path / MODEL_FILE)))
        return model.to(device)

    def load_full_state(self, state: dict[str, torch.Tensor]) -> None:
        _, tied = dedup_shared(self.state_dict())
        result = self.load_state_dict(state, strict=False)
        missing = set(result.missing_keys) - set(tied)
        if missing or result.unexpected_keys:
            raise ValueError(
                f"checkpoint mismatch: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(result.unexpected_keys)[:5]}"
            )

    def clone(self) -> SCMLLM:
        """An independent copy (e.g. for a learner that trains while this one serves)."""
        return copy.deepcopy(self)
