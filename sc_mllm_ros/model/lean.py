"""A lean inference forward of the LLaMA decoder: LoRA merged into private weights, a static KV cache.

At the shipped model's size (4 layers of width 256) a decoding pass over 1-10 tokens is mostly Python: Hugging
Face's ``LlamaForCausalLM.forward`` (mask and rotary set-up, output records, a dynamic cache) and peft's LoRA
modules (two extra Linear calls each) cost ~5 ms a pass, the arithmetic well under 1 ms.  :class:`LeanLlama`
computes the same function with a few tensor ops per layer:

* the LoRA deltas are merged into a private copy of the adapted weights (q, k and v fused into one matrix), so
  training and the saved adapter never see merged weights; the copy is rebuilt whenever any LLM parameter
  changed (an adapter hot swap, an optimiser step, ``.to()``), detected by the tensors' version counters;
* the rotary table is computed once, by the model's own rotary module, for every position;
* keys and values go into a preallocated cache, so a pass appends without concatenating.

Extra memory: the adapted projections once more (for LLaMA-7B with LoRA on q/k/v/o, 4 GiB in bf16).
Only LoRA (or no) adapters are supported: an adaption prompt changes attention itself (see :meth:`supports`).
"""

from __future__ import annotations

from dataclasses import dataclass

import peft
import torch
from torch import nn
from torch.nn import functional as F
from transformers import LlamaForCausalLM


def _weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Effective (weight, bias) of a Linear, with an unmerged peft LoRA delta added."""
    if isinstance(module, peft.tuners.lora.Linear):
        base = module.base_layer
        weight = base.weight
        if module.merged or module.disable_adapters:  # the base weight already is the effective one
            return weight, base.bias
        for name in module.active_adapters:
            if name in module.lora_A:
                weight = weight + module.get_delta_weight(name)
        return weight, base.bias
    return module.weight, module.bias


@dataclass
class _Layer:
    qkv_w: torch.Tensor
    qkv_b: torch.Tensor | None
    o_w: torch.Tensor
    o_b: torch.Tensor | None
    gate: tuple[torch.Tensor, torch.Tensor | None]
    up: tuple[torch.Tensor, torch.Tensor | None]
    down: tuple[torch.Tensor, torch.Tensor | None]
    norm1: torch.Tensor
    norm2: torch.Tensor


class KVCache:
    """Keys and values of ``batch`` sequences, preallocated for ``capacity`` positions per layer."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        self.keys, self.values = keys, values
        self.length = 0

    @classmethod
    def empty(cls, layers: int, batch: int, heads: int, capacity: int, head_dim: int, like: torch.Tensor):
        def new() -> torch.Tensor:
            return like.new_empty(batch, heads, capacity, head_dim)

        return cls([new() for _ in range(layers)], [new() for _ in range(layers)])

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def reserve(self, n: int) -> None:
        """Room for ``n`` more positions (doubling, so a long answer reallocates rarely)."""
        if self.length + n <= self.capacity:
            return
        size = max(2 * self.capacity, self.length + n)
        for buffers in (self.keys, self.values):
            for i, t in enumerate(buffers):
                grown = t.new_empty(*t.shape[:2], size, t.shape[3])
                grown[:, :, : self.length] = t[:, :, : self.length]
                buffers[i] = grown

    def repeat(self, n: int) -> KVCache:
        """A cache of ``n`` copies of this batch-1 cache (same length, own storage)."""
        out = KVCache([k.repeat(n, 1, 1, 1) for k in self.keys], [v.repeat(n, 1, 1, 1) for v in self.values])
        out.length = self.length
        return out


class LeanLlama:
    """Inference-only forward of ``llm`` (a peft-wrapped or plain ``LlamaForCausalLM``) on embeddings."""

    def __init__(self, llm: nn.Module) -> None:
        self.llm = llm
        self._params: list[nn.Parameter] = []
        self._key: tuple | None = None
        self._layers: list[_Layer] = []

    @staticmethod
    def supports(llm: nn.Module) -> bool:
        """True when every adapter of ``llm`` is LoRA on Linear layers (or there is none)."""
        if isinstance(llm, peft.PeftModel):
            return all(isinstance(c, peft.LoraConfig) for c in llm.peft_config.values())
        return isinstance(llm, LlamaForCausalLM)

    @property
    def base(self) -> LlamaForCausalLM:
        return self.llm.get_base_model() if isinstance(self.llm, peft.PeftModel) else self.llm

    def _refresh(self) -> None:
        """Rebuild the merged weights and rotary table if any parameter changed since the last build."""
        # Walking the peft module tree costs ~1 ms: the parameter objects are listed once (loading and
        # ``.to()`` change them in place; none are replaced), their storage and versions checked each time.
        if not self._params:
            self._params = list(self.llm.parameters())
        key = tuple((p.data_ptr(), p._version) for p in self._params)
        if key == self._key:
            return
        base = self.base
        cfg = base.config
        with torch.no_grad():
            self._layers = []
            for layer in base.model.layers:
                att, mlp = layer.self_attn, layer.mlp
                qkv = [_weight(m) for m in (att.q_proj, att.k_proj, att.v_proj)]
                biases = [b for _, b in qkv]
                self._layers.append(
                    _Layer(
                        qkv_w=torch.cat([w for w, _ in qkv]),
                        qkv_b=None if biases[0] is None else torch.cat(biases),
                        o_w=_weight(att.o_proj)[0],
                        o_b=_weight(att.o_proj)[1],
                        gate=_weight(mlp.gate_proj),
                        up=_weight(mlp.up_proj),
                        down=_weight(mlp.down_proj),
                        norm1=layer.input_layernorm.weight,
                        norm2=layer.post_attention_layernorm.weight,
                    )
                )
            self._lm_head = _weight(base.lm_head)
            self._norm = base.model.norm.weight
            self._act = base.model.layers[0].mlp.act_fn
            self._eps = cfg.rms_norm_eps
            self._heads = cfg.num_attention_heads
            self._kv_heads = cfg.num_key_value_heads
            self._head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            positions = torch.arange(cfg.max_position_embeddings, device=self._norm.device)[None]
            cos, sin = base.model.rotary_emb(self._norm, position_ids=positions)
            half = self._head_dim // 2
            # rotate_half(x) * sin == x.roll(half) * sin with the first half of sin negated (exactly).
            self._cos = cos[0]
            self._sin = torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)
        self._key = key

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        """An empty cache for a new answer; the weights are checked (and rebuilt if stale) here, once."""
        self._refresh()
        return KVCache.empty(
            len(self._layers), batch, self._kv_heads, capacity, self._head_dim, like=self._norm
        )

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # As LlamaRMSNorm computes it (in float32), for the same numbers.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self._eps)
        return weight * h.to(x.dtype)

    def forward(self, embeds: torch.Tensor, cache: KVCache, last_only: bool = True) -> torch.Tensor:
        """Logits (B, V) after the last position of ``embeds`` (B, n, D), or (B, n, V) for every position.

        ``embeds`` continue the sequences in ``cache`` (from :meth:`new_cache`), which is extended by them.
        """
        b, n, _ = embeds.shape
        start = cache.length
        cache.reserve(n)
        end = start + n
        heads, kv_heads, hd = self._heads, self._kv_heads, self._head_dim
        cos, sin = self._cos[start:end], self._sin[start:end]
        # Causal within the new tokens, everything before them visible; one token needs no mask.
        mask = None
        if n > 1 and start > 0:
            mask = torch.ones(n, end, dtype=torch.bool, device=embeds.device).tril(start)
        h = embeds
        last = len(self._layers) - 1
        for i, layer in enumerate(self._layers):
            x = self._rms(h, layer.norm1)
            qkv = F.linear(x, layer.qkv_w, layer.qkv_b)
            q = qkv[..., : heads * hd].view(b, n, heads, hd).transpose(1, 2)
            kv = qkv[..., heads * hd :].view(b, n, 2, kv_heads, hd).permute(2, 0, 3, 1, 4)
            k = kv[0]
            cache.keys[i][:, :, start:end] = k * cos + k.roll(hd // 2, -1) * sin
            cache.values[i][:, :, start:end] = kv[1]
            if last_only and i == last:
                # Past the last layer's keys and values only the last position is read: its query sees
                # every position, and the rest of the layer runs on one row (a fifth of a prefill saved).
                q, h, rows, causal, row_mask = q[:, :, -1:], h[:, -1:], 1, False, None
            else:
                rows, causal, row_mask = n, n > 1 and start == 0, mask
            q = q * cos[-rows:] + q.roll(hd // 2, -1) * sin[-rows:]
            a = F.scaled_dot_product_attention(
                q,
                cache.keys[i][:, :, :end],
                cache.values[i][:, :, :end],
                attn_mask=row_mask,
                is_causal=causal,
                enable_gqa=kv_heads != heads,
            )
            h = h + F.linear(a.transpose(1, 2).reshape(b, rows, heads * hd), layer.o_w, layer.o_b)
            x = self._rms(h, layer.norm2)
            m = self._act(F.linear(x, *layer.gate)) * F.linear(x, *layer.up)
            h = h + F.linear(m, *layer.down)
        cache.length = end
        if last_only:
            h = h[:, -1]
        return F.linear(self._rms(h, self._norm), *self._lm_head)
