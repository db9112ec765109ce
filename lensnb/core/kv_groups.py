"""Grouped-query attention: the one source of truth for KV-group arithmetic.

Query head ``h`` reads key/value head ``h // group_size`` where
``group_size = n_heads // n_key_value_heads`` (the layout of ``repeat_kv`` in transformers).
``KVGroups`` is a value object: ``lens.kv_groups``, ``facts.kv_groups``, ``kv_groups(obj)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import GQAError
from .indices import check_index


@dataclass(frozen=True)
class KVGroups:
    """How ``n_heads`` query heads share ``n_key_value_heads`` key/value heads."""

    n_heads: int
    n_key_value_heads: int

    def __post_init__(self) -> None:
        if self.n_key_value_heads < 1 or self.n_heads % self.n_key_value_heads:
            raise GQAError(
                f"n_heads ({self.n_heads}) is not a multiple of n_key_value_heads "
                f"({self.n_key_value_heads})"
            )

    @property
    def group_size(self) -> int:
        """Query heads sharing one key/value head."""
        return self.n_heads // self.n_key_value_heads

    @property
    def is_gqa(self) -> bool:
        """Fewer key/value heads than query heads (GQA or MQA)."""
        return self.n_key_value_heads < self.n_heads

    def check_head(self, head: int) -> int:
        """``head`` as a query-head index ``0..n_heads-1`` (heads do not count from the end)."""
        return check_index(head, self.n_heads, "query head", plural="heads")

    def check_kv_head(self, kv_head: int) -> int:
        """``kv_head`` as a KV-group index ``0..n_key_value_heads-1``."""
        return check_index(kv_head, self.n_key_value_heads, "KV group")

    def kv_head_of(self, head: int) -> int:
        """The key/value head (KV group) that query head ``head`` reads."""
        return self.check_head(head) // self.group_size

    def heads_of_kv(self, kv_head: int) -> list[int]:
        """The query heads that share key/value head ``kv_head``."""
        g = self.group_size
        start = self.check_kv_head(kv_head) * g
        return list(range(start, start + g))

    @property
    def groups(self) -> list[list[int]]:
        """``groups[g]`` = the query heads of KV group ``g``."""
        return [self.heads_of_kv(g) for g in range(self.n_key_value_heads)]

    def require_gqa(self, what: str = "this view") -> None:
        """Raise ``GQAError`` when the model has one KV head per query head (plain MHA)."""
        if not self.is_gqa:
            raise GQAError(
                f"{what} needs grouped-query attention, but this model has no GQA: "
                f"{self.n_heads} query heads and {self.n_key_value_heads} key/value heads "
                "(one KV head per query head)"
            )


def kv_groups(obj: Any) -> KVGroups:
    """The ``KVGroups`` of a ``Lens``, ``ModelFacts`` or anything with ``n_heads`` and
    ``n_key_value_heads``."""
    if isinstance(obj, KVGroups):
        return obj
    return KVGroups(int(obj.n_heads), int(obj.n_key_value_heads))


def group_patterns(pattern: Any, n_key_value_heads: int) -> Any:
    """``[..., n_heads, q, k]`` -> ``[..., n_kv, group_size, q, k]`` (query heads by KV group)."""
    n_heads = pattern.shape[-3]
    if n_heads % n_key_value_heads:
        raise GQAError(f"{n_heads} heads do not split into {n_key_value_heads} KV groups")
    return pattern.unflatten(-3, (n_key_value_heads, n_heads // n_key_value_heads))


def group_summaries(pattern: Any, n_key_value_heads: int) -> dict[str, Any]:
    """Per-KV-group summaries of attention patterns ``[..., n_heads, q, k]``.

    Returns ``mean``, ``max`` and ``spread`` (max - min over the group's heads), each
    ``[..., n_kv, q, k]``: a large spread means heads that share K/V still attend differently.
    """
    g = group_patterns(pattern, n_key_value_heads)
    hi, lo = g.amax(dim=-3), g.amin(dim=-3)
    return {"mean": g.mean(dim=-3), "max": hi, "spread": hi - lo}


