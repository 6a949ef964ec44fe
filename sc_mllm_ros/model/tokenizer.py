"""Tokenizers: the project's own (built offline with ``tokenizers``) or a checkpoint's ``tokenizer.json``.

``numbers``: a byte-level BPE trained on the prompt vocabulary plus ONE token per integer the answers use
(-50..answer_size-1), with contiguous ids in value order so the model can initialise their embeddings from
sinusoids of the value and spread soft targets over neighbours.  ``bpe``: the same BPE, numbers digit by
digit.
Everything is encoded segment by segment (fixed text, then each slot on its own), identically for training and
decoding.
"""

from __future__ import annotations

from functools import lru_cache
import json
from pathlib import Path

from tokenizers import AddedToken, decoders, models, pre_tokenizers, Tokenizer, trainers

from sc_mllm_ros.model.prompts import (
    FAILURE_ANSWERS,
    INSTRUCTIONS,
    POSE_ANSWER,
    Segment,
    Slot,
    WRAPPER,
)

SPECIALS = ("<pad>", "<s>", "</s>")
DEFAULT_OBJECTS = (
    "drawer",
    "cabinet door",
    "microwave door",
    "door",
    "refrigerator door",
    "oven door",
    "dishwasher door",
    "washing machine door",
    "safe door",
    "box lid",
    "toilet lid",
    "window",
    "kettle lid",
    "laptop lid",
)


def _corpus(objects: tuple[str, ...]) -> list[str]:
    """Prompt and answer text with typical numbers: what the BPE merges are learnt from."""
    values = {"row": 123, "col": 45, "ux": -12, "uy": 3, "uz": 49, "fx": 50, "fy": -7, "fz": 0}
    texts = list(FAILURE_ANSWERS.values())
    for obj in objects:
        for instr in INSTRUCTIONS.values():
            texts.append(WRAPPER.format(instruction=instr.format(object=obj, **values)))
        texts.append(POSE_ANSWER.format(**values))
    texts.extend(str(v) for v in range(-50, 336))
    return texts


class SCTokenizer:
    """A ``tokenizers.Tokenizer`` plus special ids and the number-token block."""

    def __init__(
        self,
        tok: Tokenizer,
        bos_id: int,
        eos_id: int,
        pad_id: int,
        number_first_id: int | None = None,
        number_lo: int = -50,
        number_hi: int = 335,
    ) -> None:
        self.tok = tok
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.number_first_id = number_first_id
        self.number_lo, self.number_hi = number_lo, number_hi
        self.encode_text = lru_cache(maxsize=4096)(self._encode_text)
        self.encode_int = lru_cache(maxsize=4096)(self._encode_int)

    # -- building / loading -------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        kind: str = "numbers",
        vocab_size: int = 600,
        objects: tuple[str, ...] = DEFAULT_OBJECTS,
        answer_size: int = 336,
    ) -> SCTokenizer:
        if kind not in ("numbers", "bpe"):
            raise ValueError(f"tokenizer kind must be 'numbers' or 'bpe' to build one, got {kind!r}")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(_corpus(tuple(objects)), trainer=trainer)
        ids = [tok.token_to_id(s) for s in SPECIALS]
        first = None
        lo, hi = -50, answer_size - 1
        if kind == "numbers":
            first = tok.get_vocab_size()
            tok.add_tokens([AddedToken(f"<{v}>", single_word=True) for v in range(lo, hi + 1)])
            assert tok.token_to_id(f"<{hi}>") == first + hi - lo, "number tokens must be contiguous"
        return cls(
            tok,
            bos_id=ids[1],
            eos_id=ids[2],
            pad_id=ids[0],
            number_first_id=first,
            number_lo=lo,
            number_hi=hi,
        )

    @classmethod
    def from_hf_dir(cls, path: str | Path) -> SCTokenizer:
        """A checkpoint's ``tokenizer.json``; BOS/EOS ids from its ``config.json`` (Hugging Face layout)."""
        path = Path(path)
        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise ValueError(
                f"{path} has no tokenizer.json (convert the checkpoint's tokenizer to the fast format)"
            )
        tok = Tokenizer.from_file(str(tok_file))
        cfg = json.loads((path / "config.json").read_text())
        bos, eos = cfg.get("bos_token_id"), cfg.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0]
        if bos is None or eos is None:
            raise ValueError(f"{path}/config.json must give bos_token_id and eos_token_id")
        pad = cfg.get("pad_token_id")
        numbers = cfg.get("number_tokens") or {}  # SC-MLLM's own config.json: the number-token block
        return cls(
            tok,
            bos_id=bos,
            eos_id=eos,
            pad_id=eos if pad is None else pad,
            number_first_id=numbers.get("first_id"),
            number_lo=numbers.get("lo", -50),
            number_hi=numbers.get("hi", 335),
        )

    # -- encoding ----------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    @property
    def has_number_tokens(self) -> bool:
        return self.number_first_id is not None

    def number_id(self, value: int) -> int:
        if self.number_first_id is None or not self.number_lo <= value <= self.number_hi:
            raise ValueError(f"no single token for {value}")
        return self.number_first_id + value - self.number_lo

    def _encode_text(self, text: str) -> tuple[int, ...]:
        return tuple(self.tok.encode(text, add_special_tokens=False).ids)

    def _encode_int(self, value: int) -> tuple[int, ...]:
        if self.has_number_tokens and self.number_lo <= value <= self.number_hi:
            return (self.number_id(value),)
        return self.encode_text(str(int(value)))

    def encode_segments(
        self, segments: list[Segment], values: dict[str, object]
    ) -> tuple[list[int], list[str]]:
        """Token ids of a filled template and, per token, the number slot it belongs to (or "")."""
        ids: list[int] = []
        owners: list[str] = []
        for seg in segments:
            if isinstance(seg, str):
                part, owner = self.encode_text(seg), ""
            elif isinstance(seg, Slot) and seg.is_int:
                part, owner = self.encode_int(int(values[seg.name])), seg.name
            elif seg.name == "cause":
                part, owner = self.encode_text(FAILURE_ANSWERS[str(values["cause"])]), ""
            else:
                part, owner = self.encode_text(str(values[seg.name])), ""
            ids.extend(part)
            owners.extend([owner] * len(part))
        return ids, owners
