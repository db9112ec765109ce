"""What a patching experiment measures: the prompt pair, the answer tokens and the metric.

The default metric is the logit difference ``logit[answer] - logit[wrong]`` at one position;
a cell's score is that metric normalised so the corrupted run is 0 and the clean run is 1
(TransformerLens's convention for denoising):
``score = (m - m_corrupted) / (m_clean - m_corrupted)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..core.errors import InputError, InputTypeError
from ..core.indices import check_index, check_position

if TYPE_CHECKING:
    from ..lens import Lens

#: ``metric(logits [batch, d_vocab]) -> [batch]``: the logits at the metric position only.
Metric = Callable[[torch.Tensor], torch.Tensor]


def answer_token(lens: Lens, token: Any, name: str) -> int:
    """The vocabulary id of ``token`` (an id, or a string that is exactly one token), for the
    argument called ``name``; an ``InputError`` naming the pieces of a longer string."""
    if isinstance(token, str):
        ids = lens.tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            pieces = [lens.tokenizer.decode([i]) for i in ids]
            raise InputError(
                f"{name}={token!r} is {len(ids)} tokens {pieces}, not one: the metric compares "
                f"single next-token logits, so pass one token's text (e.g. {pieces[0]!r}) or its "
                "id")
        return int(ids[0])
    if isinstance(token, torch.Tensor) and token.numel() == 1 and not token.is_floating_point():
        token = int(token)
    if isinstance(token, bool) or not isinstance(token, int):
        raise InputTypeError(f"{name} is a token id (int) or a string of one token, got "
                             f"{type(token).__name__}")
    return check_index(token, lens.facts.vocab_size, f"{name} token id", plural="ids",
                       where="the vocabulary")


def prompt_tokens(lens: Lens, text: Any, name: str) -> torch.Tensor:
    """``[1, pos]`` token ids of one prompt (a text or ids)."""
    if isinstance(text, torch.Tensor) and text.ndim == 1:
        text = text.unsqueeze(0)
    tokens = lens.to_tokens(text)
    if tokens.shape[0] != 1:
        raise InputError(f"{name} is one prompt (a text or tokens [1, pos]); got a batch of "
                         f"{tokens.shape[0]}")
    return tokens


def prompt_pair(lens: Lens, clean: Any, corrupted: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean and corrupted prompts as ``[1, pos]`` token ids of the same length; an
    ``InputError`` names both lengths and where the tokens part."""
    a = prompt_tokens(lens, clean, "clean")
    b = prompt_tokens(lens, corrupted, "corrupted")
    if a.shape[1] != b.shape[1]:
        sa, sb = lens.to_str_tokens(a), lens.to_str_tokens(b)
        first = next((i for i, (x, y) in enumerate(zip(sa, sb, strict=False)) if x != y),
                     min(len(sa), len(sb)))
        raise InputError(
            f"clean and corrupted prompts must have the same number of tokens, so that each "
            f"position of one maps onto the other: clean has {len(sa)} tokens, corrupted has "
            f"{len(sb)}; they part at position {first}: clean {sa[first:first + 4]} vs "
            f"corrupted {sb[first:first + 4]}. Choose words of the same token length (names, "
            "objects) for the corruption")
    return a, b


def logit_difference(answer: int, wrong: int) -> Metric:
    """``logits [batch, d_vocab] -> logit[answer] - logit[wrong]`` ``[batch]``."""

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[..., answer] - logits[..., wrong]

    metric.__name__ = "logit_difference"
    return metric


def apply_metric(metric: Metric, logits: torch.Tensor) -> torch.Tensor:
    """``metric(logits [batch, d_vocab])`` checked to be ``[batch]``."""
    out = metric(logits)
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(out, dtype=logits.dtype, device=logits.device)
    if out.ndim == 0 and logits.shape[0] == 1:
        out = out.reshape(1)
    if out.shape != (logits.shape[0],):
        raise InputError(f"metric must map logits [batch, d_vocab] {tuple(logits.shape)} to one "
                         f"value per row [batch] ({logits.shape[0]},), got {tuple(out.shape)}")
    return out


def check_metric_position(position: Any, n_pos: int) -> int:
    """The position whose logits the metric reads, as ``0..n_pos-1``."""
    return check_position(position, n_pos, "metric_position") % n_pos


def normaliser(clean: float, corrupted: float) -> float:
    """``m_clean - m_corrupted``; an ``InputError`` when the two runs do not differ."""
    span = clean - corrupted
    if not abs(span) > 1e-6 * max(1.0, abs(clean), abs(corrupted)):
        raise InputError(
            f"the clean and corrupted prompts give the same metric ({clean:+.6g} and "
            f"{corrupted:+.6g}): there is no difference for patching to restore. Choose a "
            "corruption that changes the answer (or another metric)")
    return span
