"""What generation returns: a ``Step`` per new token and the ``Generation`` at the end."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..core.errors import InputError


@dataclass
class LogitLensStep:
    """Top tokens of each layer's residual stream (``hook_resid_post``) at the new position, read
    through the final norm and the unembedding."""

    top_ids: torch.Tensor  # [batch, n_layers, k]
    top_probs: torch.Tensor  # [batch, n_layers, k]
    chosen_probs: torch.Tensor  # [batch, n_layers] probability of the token actually chosen


@dataclass
class Step:
    """One generated token (per row of the batch).

    Attributes:
        index: 0 for the first new token.
        positions: ``[batch]`` absolute position the new token takes.
        token_ids: ``[batch]``; ``texts``: their decoded text.
        top_ids / top_probs: ``[batch, k]`` the k most likely next tokens and probabilities.
        cache: hook name -> activation at the position that predicted this token
            (``[batch, ...]``, the position axis removed).
        logit_lens: a ``LogitLensStep`` when asked for.
        logits: ``[batch, d_vocab]`` when asked for (``return_logits=True``).
        finished: ``[batch]`` rows that have stopped (EOS or stop string) with this token.
    """

    index: int
    positions: torch.Tensor
    token_ids: torch.Tensor
    texts: list[str]
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    top_texts: list[list[str]]
    finished: torch.Tensor
    cache: dict[str, torch.Tensor] = field(default_factory=dict)
    logit_lens: LogitLensStep | None = None
    logits: torch.Tensor | None = None

    @property
    def token(self) -> int:
        """The new token id (one prompt)."""
        self._one()
        return int(self.token_ids[0])

    @property
    def text(self) -> str:
        self._one()
        return self.texts[0]

    @property
    def top_k(self) -> list[tuple[str, float]]:
        """``[(token text, probability), ...]`` (one prompt)."""
        self._one()
        return list(zip(self.top_texts[0], self.top_probs[0].tolist(), strict=True))

    def _one(self) -> None:
        if len(self.texts) != 1:
            raise InputError(f"this step holds a batch of {len(self.texts)}: use .texts / "
                             ".token_ids / .top_probs[row]")

    def __repr__(self) -> str:
        return f"Step({self.index}: {self.texts!r})"


@dataclass
class Generation:
    """The result of ``generate``.

    Attributes:
        tokens: ``[batch, pos]`` prompt (left-padded) + generated tokens (pad after a row ends).
        prompt_lengths: real prompt length of each row.
        new_tokens: ``[batch, n_new]``.
        texts: each row's generated text (special tokens dropped).
        steps: the ``Step`` objects when activations, logit lens or steps were asked for.
        logits: ``[batch, n_new, d_vocab]`` when ``return_logits=True``.
        stop_reason: ``"eos"``, ``"stop"`` (stop string), ``"max_new_tokens"``.
        path: ``"fast"`` (plain Hugging Face modules) or ``"bridge"``.
    """

    tokens: torch.Tensor
    prompt_lengths: list[int]
    new_tokens: torch.Tensor
    texts: list[str]
    stop_reason: str
    path: str
    steps: list[Step] = field(default_factory=list)
    logits: torch.Tensor | None = None

    @property
    def text(self) -> str:
        if len(self.texts) != 1:
            raise InputError(f"a batch of {len(self.texts)}: use .texts")
        return self.texts[0]

    def __repr__(self) -> str:
        return (f"Generation({self.new_tokens.shape[1]} new tokens, {self.stop_reason}, "
                f"{self.path}: {self.texts!r})")

