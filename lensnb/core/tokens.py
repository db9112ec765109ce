"""The one token-id rule: what a forward pass may take, checked before it runs.

Token ids are an integer tensor ``[pos]`` or ``[batch, pos]`` with at least one position and
every id in ``0..vocab_size-1`` (``vocab_size``: the rows of the model's input embedding).
Anything else raises ``TokenError`` naming the vocabulary size and the bad ids, where torch would
raise a bare ``IndexError: index out of range in self`` from inside the embedding (or, for a
3-d tensor, return 5-d logits).
"""

from __future__ import annotations

from typing import Any

from .errors import InputError, TokenError

MAX_SHOWN = 8  # bad ids named in a message


def check_tokens(tokens: Any, vocab_size: int, *, model: str = "the model") -> Any:
    """``tokens`` as ``[batch, pos]`` (a ``[pos]`` tensor gains a batch axis), checked; an
    integer dtype other than int32/int64 becomes int64. Raises ``TokenError``."""
    import torch

    if not isinstance(tokens, torch.Tensor):
        raise TokenError(f"token ids must be a torch tensor, got {type(tokens).__name__}")
    if tokens.dtype == torch.bool or tokens.is_floating_point() or tokens.is_complex():
        raise TokenError(f"token ids must be integers, got a {tokens.dtype} tensor (convert "
                         "with .long() if it holds ids)")
    if tokens.ndim not in (1, 2):
        raise TokenError(f"token ids are [pos] or [batch, pos], got a {tokens.ndim}-d tensor of "
                         f"shape {tuple(tokens.shape)}")
    if tokens.ndim == 1:
        tokens = tokens.unsqueeze(0)
    if tokens.shape[-1] == 0 or tokens.shape[0] == 0:
        raise TokenError(f"token ids hold no tokens (shape {tuple(tokens.shape)}): pass at least "
                         "one token per row")
    if tokens.dtype not in (torch.int32, torch.int64):
        tokens = tokens.long()
    bad = (tokens < 0) | (tokens >= vocab_size)
    if bool(bad.any()):
        where = bad.nonzero()
        values = tokens[bad].unique().tolist()
        shown = ", ".join(str(v) for v in values[:MAX_SHOWN])
        more = f" and {len(values) - MAX_SHOWN} more" if len(values) > MAX_SHOWN else ""
        row, pos = (int(i) for i in where[0])
        raise TokenError(
            f"token ids must lie in 0..{vocab_size - 1}: {model} has a vocabulary of "
            f"{vocab_size} tokens, got {shown}{more} ({len(where)} out-of-range id(s), the "
            f"first at [{row}, {pos}])"
        )
    return tokens


# ---------------------------------------------------------------------------- tokenizer rules
def special_rule(tokenizer: Any) -> tuple[bool, bool]:
    """Whether ``tokenizer`` itself adds BOS first / EOS last (probed on ``"a"``)."""
    probe = list(tokenizer("a")["input_ids"])
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    added = len(probe) > len(plain)
    return (tokenizer.bos_token_id is not None and added and probe[0] == tokenizer.bos_token_id,
            tokenizer.eos_token_id is not None and added and probe[-1] == tokenizer.eos_token_id)


def encode(tokenizer: Any, text: str, prepend_bos: bool | None,
           rule: tuple[bool, bool]) -> list[int]:
    """One text's ids by the tokenizer's own rule (``rule``: ``special_rule``), then BOS/EOS as
    asked: ``prepend_bos=None`` keeps the tokenizer's BOS rule, ``True`` puts BOS first where
    it does not, ``False`` removes the one it adds; an EOS it appends is dropped."""
    ids = list(tokenizer(text)["input_ids"])
    adds_bos, adds_eos = rule
    eos = tokenizer.eos_token_id
    if adds_eos and len(ids) > 1 and ids[-1] == eos:
        ids = ids[:-1]
    bos = tokenizer.bos_token_id
    if prepend_bos is True and bos is not None and not (adds_bos and ids[:1] == [bos]):
        ids = [bos, *ids]
    elif prepend_bos is False and adds_bos and ids[:1] == [bos]:
        ids = ids[1:]
    return ids


def pad_rows(rows: list[list[int]], pad: int, side: str) -> Any:
    """``[batch, pos]`` int64 from ragged rows, padded with ``pad`` on ``side`` (``"left"`` or
    ``"right"``)."""
    import torch

    if side not in ("left", "right"):
        raise InputError(f"padding_side must be 'left' or 'right', got {side!r}")
    n = max(len(r) for r in rows)
    out = torch.full((len(rows), n), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            if side == "right":
                out[i, :len(r)] = torch.tensor(r)
            else:
                out[i, n - len(r):] = torch.tensor(r)
    return out


def eos_token_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """The end-of-sequence ids: the generation config's ``eos_token_id`` (one id or a list),
    else the tokenizer's; ``[]`` when neither has one."""
    eos = getattr(generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def pad_token_id(generation_config: Any, tokenizer: Any) -> int:
    """The pad id, as Hugging Face's ``generate`` chooses it: the generation config's
    ``pad_token_id``, else the tokenizer's, else the first end-of-sequence id, else 0."""
    pad = getattr(generation_config, "pad_token_id", None)
    if pad is None:
        pad = tokenizer.pad_token_id
    if pad is None:
        eos = eos_token_ids(generation_config, tokenizer)
        pad = eos[0] if eos else 0
    return int(pad)
