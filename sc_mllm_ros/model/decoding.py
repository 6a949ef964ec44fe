"""Constrained decoding of the answer grammar, token by token or with the template prefilled.

The grammar of an answer is its template (``prompts.answer_segments``): fixed text, integer slots and the
failure ``cause`` choice.  :class:`AnswerConstraint` says which tokens may come next, so every answer parses
and
every number is in range whatever the weights; direction slots are further limited so the decoded vector has a
length near 1 and ``forward`` is not parallel to ``up`` (a degenerate rotation cannot come out).

Two greedy decoders give the same answer:

* :func:`decode_tokenwise`: one forward pass per answer token (what plain constrained greedy does);
* :func:`decode_prefilled`: a token that is the only allowed one is appended without asking the model, and the
  forced run is fed to the KV cache in one forward pass when logits are next needed, i.e. one pass per number
  slot (per branching point) instead of one per token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from sc_mllm_ros.model.prompts import CAUSES, DIRECTION_SLOTS, FAILURE_ANSWERS, Segment, Slot
from sc_mllm_ros.model.tokenizer import SCTokenizer

_Q = np.arange(-50, 51)
# Decoded direction integers must have a length in [45, 55] (unit length is 50; quantising moves it < 1.8) ...
_NORM_LO, _NORM_HI = 45.0, 55.0
# ... and forward must be within 60 degrees of orthogonal to up (the truth is orthogonal up to quantisation).
_MAX_COS = 0.5


def _shell() -> tuple[np.ndarray, np.ndarray]:
    """Integer vectors (N, 3) of admissible length, in (x, y, z) lexicographic order, and their lengths."""
    x, y, z = (a.ravel() for a in np.meshgrid(_Q, _Q, _Q, indexing="ij"))
    norm = np.sqrt(x * x + y * y + z * z)
    ok = (norm >= _NORM_LO) & (norm <= _NORM_HI)
    return np.stack([x[ok], y[ok], z[ok]], axis=1), norm[ok]


# Computed once: a per-answer 101^3 grid cost more than all the forward passes of an answer.
_SHELL, _SHELL_NORM = _shell()
_SHELL_F = [np.ascontiguousarray(_SHELL[:, a], dtype=float) for a in range(3)]  # what int * float casts to


def _forward_points(up: np.ndarray) -> np.ndarray:
    """Shell vectors within ``_MAX_COS`` of orthogonal to ``up``."""
    u = up / np.linalg.norm(up)
    x, y, z = _SHELL_F
    cos = (x * u[0] + y * u[1] + z * u[2]) / np.maximum(_SHELL_NORM, 1e-9)
    # compress copies whole rows; boolean indexing of a 2-D array goes element by element (4x slower).
    return np.compress(np.abs(cos) <= _MAX_COS, _SHELL, axis=0)


def allowed_values(slot: Slot, values: dict[str, int], cache: dict) -> list[int]:
    """Integers a slot may take given the slots already decoded."""
    if slot.name not in DIRECTION_SLOTS:
        return list(range(slot.lo, slot.hi + 1))
    vec, axis = slot.name[0], "xyz".index(slot.name[1])
    # Admissible vectors agreeing with the components decoded so far, narrowed one axis at a time.  The
    # points stay in lexicographic order, so the column of the current axis is sorted: slices, not scans.
    key = (vec, axis)
    if key not in cache:
        if axis > 0:
            prev = cache[(vec, axis - 1)]
            v = values[vec + "xyz"[axis - 1]]
            lo, hi = np.searchsorted(prev[:, axis - 1], (v, v + 1))
            cache[key] = prev[lo:hi]
        elif vec == "u":
            cache[key] = _SHELL
        else:
            cache[key] = _forward_points(np.array([values["ux"], values["uy"], values["uz"]], dtype=float))
    col = cache[key][:, axis]
    return [int(v) for v in col[np.concatenate(([True], col[1:] != col[:-1]))]]


@dataclass
class _Trie:
    children: dict[int, _Trie] = field(default_factory=dict)
    value: object = None  # set on nodes that end an alternative

    @classmethod
    def build(cls, alternatives: list[tuple[tuple[int, ...], object]]) -> _Trie:
        root = cls()
        for ids, value in alternatives:
            node = root
            for t in ids:
                node = node.children.setdefault(t, cls())
            node.value = value
        return root


class AnswerConstraint:
    """State machine over an answer template: ``allowed()`` next token ids, ``advance(token)``."""

    def __init__(self, segments: list[Segment], tok: SCTokenizer) -> None:
        for a, b in zip(segments, segments[1:]):
            if isinstance(a, Slot) and isinstance(b, Slot):
                raise ValueError("two slots must be separated by fixed text")
        self.tok = tok
        self.segments = segments
        self.values: dict[str, object] = {}
        self.tokens: list[int] = []
        self._cache: dict = {}
        self._seg = -1
        self._text: tuple[int, ...] = ()
        self._pos = 0
        self._node: _Trie | None = None
        self.done = False
        self._enter(0)

    def _enter(self, i: int) -> None:
        """Move to segment ``i`` (or to the end-of-sequence state)."""
        self._seg = i
        self._node = None
        if i >= len(self.segments):
            self._text, self._pos = (self.tok.eos_id,), 0
            return
        seg = self.segments[i]
        if isinstance(seg, str):
            self._text, self._pos = self.tok.encode_text(seg), 0
        elif seg.name == "cause":
            self._node = _Trie.build([(self.tok.encode_text(FAILURE_ANSWERS[c]), c) for c in CAUSES])
        else:
            self._node = _Trie.build(
                [(self.tok.encode_int(v), v) for v in allowed_values(seg, self.values, self._cache)]
            )

    def _next_first(self) -> int:
        """First token after the current slot (slots are always followed by text or the end)."""
        nxt = self._seg + 1
        if nxt >= len(self.segments):
            return self.tok.eos_id
        return self.tok.encode_text(self.segments[nxt])[0]

    def allowed(self) -> list[int]:
        if self.done:
            return []
        if self._node is None:
            return [self._text[self._pos]]
        out = list(self._node.children)
        if self._node.value is not None:
            first = self._next_first()
            if first not in self._node.children:
                out.append(first)
        return sorted(out)

    def advance(self, token: int) -> None:
        if token not in self.allowed():
            raise ValueError(f"token {token} is not allowed here")
        self.tokens.append(token)
        if self._node is not None:
            if token in self._node.children:
                self._node = self._node.children[token]
                if not self._node.children:  # a leaf: the slot is complete
                    self.values[self.segments[self._seg].name] = self._node.value
                    self._enter(self._seg + 1)
                return
            # the slot ended; this token starts the next segment
            self.values[self.segments[self._seg].name] = self._node.value
            self._enter(self._seg + 1)
        self._pos += 1
        if self._pos >= len(self._text):
            if self._seg >= len(self.segments):
                self.done = True
            else:
                self._enter(self._seg + 1)


LogitsFn = Callable[[torch.Tensor | None, list[int], object], tuple[torch.Tensor, object]]


def _pick(logits: torch.Tensor, allowed: list[int]) -> int:
    idx = torch.tensor(allowed, dtype=torch.long)
    return allowed[int(torch.argmax(logits[idx]))]


def decode_tokenwise(step: LogitsFn, prefix: torch.Tensor, constraint: AnswerConstraint) -> int:
    """Constrained greedy, one forward pass per token; returns the number of forward passes.

    ``step(prefix_embeds|None, new_ids, cache)`` returns the logits after the last input and the new
    cache.  Returns the number of forward passes.
    """
    logits, cache = step(prefix, [], None)
    passes = 1
    while True:
        allowed = constraint.allowed()
        if not allowed:
            return passes
        token = _pick(logits, allowed)
        constraint.advance(token)
        if constraint.done:
            return passes
        logits, cache = step(None, [token], cache)
        passes += 1


def decode_prefilled(step: LogitsFn, prefix: torch.Tensor, constraint: AnswerConstraint) -> int:
    """Same answer as :func:`decode_tokenwise`; forced tokens are batched into the next forward pass."""
    pending: list[int] = []
    allowed = constraint.allowed()
    # Forced template text right after the prompt goes into the same prefill pass.
    while len(allowed) == 1 and not constraint.done:
        constraint.advance(allowed[0])
        pending.append(allowed[0])
        allowed = constraint.allowed()
    logits, cache = step(prefix, pending, None)
    passes = 1
    pending = []
    while allowed:
        if len(allowed) == 1:
            token = allowed[0]
        else:
            if pending:
                logits, cache = step(None, pending, cache)
                passes += 1
                pending = []
            token = _pick(logits, allowed)
        constraint.advance(token)
        pending.append(token)
        allowed = constraint.allowed()
    return passes
