"""Grouped-query attention: the one source of truth for KV-group arithmetic.

Query head ``h`` reads key/value head ``h // group_size`` where
``group_size = n_heads // n_key_value_heads`` (the layout of ``repeat_kv`` in transformers).
"""

from __future__ import annotations

from typing import Any


class GQAError(ValueError):
    """A GQA-only view asked of a model without GQA, or an inconsistent head layout."""


class KVGroups:
    """KV-group arithmetic, mixed into ``Lens`` (needs ``n_heads`` and ``n_key_value_heads``)."""

    n_heads: int
    n_key_value_heads: int

    @property
    def group_size(self) -> int:
        """Query heads sharing one key/value head."""
        if self.n_heads % self.n_key_value_heads:
            raise GQAError(
                f"n_heads ({self.n_heads}) is not a multiple of n_key_value_heads "
                f"({self.n_key_value_heads})"
            )
        return self.n_heads // self.n_key_value_heads

    def _check_head(self, head: int) -> int:
        if not isinstance(head, int) or isinstance(head, bool):
            raise TypeError(f"a head index is an int, got {type(head).__name__}")
        if not 0 <= head < self.n_heads:
            raise IndexError(
                f"query head {head} is out of range: valid heads are 0..{self.n_heads - 1}"
            )
        return head

    def _check_kv_head(self, kv_head: int) -> int:
        if not isinstance(kv_head, int) or isinstance(kv_head, bool):
            raise TypeError(f"a KV-group index is an int, got {type(kv_head).__name__}")
        if not 0 <= kv_head < self.n_key_value_heads:
            raise IndexError(
                f"KV group {kv_head} is out of range: valid KV groups are "
                f"0..{self.n_key_value_heads - 1}"
            )
        return kv_head

    def kv_head_of(self, head: int) -> int:
        """The key/value head (KV group) that query head ``head`` reads."""
        return self._check_head(head) // self.group_size

    def heads_of_kv(self, kv_head: int) -> list[int]:
        """The query heads that share key/value head ``kv_head``."""
        g = self.group_size
        start = self._check_kv_head(kv_head) * g
        return list(range(start, start + g))

    def require_gqa(self, what: str = "this view") -> None:
        """Raise ``GQAError`` when the model has one KV head per query head (plain MHA)."""
        if self.n_key_value_heads == self.n_heads:
            raise GQAError(
                f"{what} needs grouped-query attention, but this model has no GQA: "
                f"{self.n_heads} query heads and {self.n_key_value_heads} key/value heads "
                "(one KV head per query head)"
            )


def kv_groups(obj: Any) -> KVGroups:
    """KV-group arithmetic for a ``Lens`` or ``ModelFacts``."""
    if isinstance(obj, KVGroups):
        return obj
    g = KVGroups()
    g.n_heads, g.n_key_value_heads = obj.n_heads, obj.n_key_value_heads
    return g


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
