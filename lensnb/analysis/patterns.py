"""Attention patterns recomputed on demand from the queries and keys as the model uses them.

Holding every pattern of a long text costs ``n_layers x n_heads x N^2`` numbers (an 8B model at
4,096 tokens: 17 G floats). ``KeptQK`` keeps only what produces them, each layer's queries
``[pos, n_heads, d_head]`` and keys ``[pos, n_kv, d_head]`` exactly as its softmax uses them
(rotated where the model rotates, partial rotary with its pass-through dims, after q/k norms;
as projected where positions are absolute, GPT-2), and recomputes one head's pattern, a block of
rows, one row, one column or a max-pooled overview when asked. Which hooks carry them, and the
layer's scaling, soft-cap and sliding window, the backend declares (``lens.backend.layer_qk``:
a ``backends.qk.LayerQK``). The recomputation is the model's own:
``softmax(cap(q k^T * scaling) + causal/sliding-window mask)`` in float32, with query head ``h``
reading KV head ``h // group_size``; it equals ``hook_pattern`` and Hugging Face's eager
attention weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..backends.qk import LayerQK
from ..core.errors import BackendError, IndexRangeError, InputError
from ..core.indices import check_index, check_position
from ..core.kv_groups import KVGroups
from ..core.progress import bar as progress_bar
from ..core.settings import PROGRESS_MIN_TOKENS

if TYPE_CHECKING:
    from ..lens import Lens, TextOrTokens

CHUNK_BYTES = 32 * 2**20  # working memory for one block of score rows


class _Enough(Exception):
    """Raised from the last kept layer's key hook to end the forward pass early."""


def scores_block(q: torch.Tensor, k: torch.Tensor, spec: LayerQK, q_start: int,
                 n_keys: int | None = None) -> torch.Tensor:
    """Masked pre-softmax scores of a block of query rows.

    q: ``[heads, rows, d_head]`` (query positions ``q_start ..``); k: ``[pos, d_head]``.
    Returns ``[heads, rows, n_keys]`` float32 (``n_keys`` defaults to all keys) with ``-inf``
    where the causal or sliding-window mask hides a key. The order of operations is HF eager's
    (``q k^T``, then ``* scaling``, then the soft-cap); the mask is applied only to the key
    columns it can reach (the diagonal band and, with a window, the far band).
    """
    n_keys = k.shape[0] if n_keys is None else n_keys
    s = torch.matmul(q.float(), k[:n_keys].float().transpose(0, 1)).mul_(spec.scaling)
    if spec.softcap is not None:
        s = torch.tanh(s.div_(spec.softcap)).mul_(spec.softcap)
    rows = q.shape[1]
    qi = torch.arange(q_start, q_start + rows, device=s.device)[:, None]
    lo = min(q_start, n_keys)  # columns before the block's first query are never "future"
    if lo < n_keys:
        kj = torch.arange(lo, n_keys, device=s.device)[None, :]
        s[..., lo:].masked_fill_(kj > qi, float("-inf"))
    if spec.window is not None:
        far = min(n_keys, max(0, q_start + rows - spec.window))  # keys some row cannot see
        if far:
            kj = torch.arange(far, device=s.device)[None, :]
            s[..., :far].masked_fill_(qi - kj >= spec.window, float("-inf"))
    return s


def _pool_keys(s: torch.Tensor, f: int) -> torch.Tensor:
    """Max over consecutive groups of ``f`` columns (the last one ragged).

    ``[..., n] -> [..., ceil(n / f)]``."""
    n = s.shape[-1]
    if f == 1:
        return s
    full = n // f * f
    parts = [s[..., :full].unflatten(-1, (n // f, f)).amax(-1)] if full else []
    if full < n:
        parts.append(s[..., full:].amax(-1, keepdim=True))
    return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


class KeptQK:
    """The queries and keys of some layers of one text, as the model uses them; patterns
    recomputed from them.

    Build with ``KeptQK.from_lens(lens, text, layers)``. Memory:
    ``len(layers) x pos x (n_heads + n_kv) x d_head`` numbers (see ``nbytes``), never ``pos^2``
    per head beyond one block of rows (``CHUNK_BYTES``) while computing. The kept q/k, and
    every pattern, row, column and block computed from them, are on the model's device
    (``.cpu()`` before plotting on a GPU).
    """

    def __init__(self, q: dict[int, torch.Tensor], k: dict[int, torch.Tensor],
                 specs: dict[int, LayerQK]):
        self.q = q  # layer -> [pos, n_heads, d_head]
        self.k = k  # layer -> [pos, n_kv, d_head]
        self.specs = specs
        first = next(iter(q.values()))
        self.n_pos, self.n_heads, self.d_head = first.shape
        self.n_kv = next(iter(k.values())).shape[1]
        self.kv_groups = KVGroups(self.n_heads, self.n_kv)  # GQAError for an impossible split
        self.group_size = self.kv_groups.group_size
        self._lse: dict[tuple[int, int], torch.Tensor] = {}  # (layer, head) -> [pos]

    @classmethod
    def from_lens(cls, lens: Lens, text: TextOrTokens, layers: Sequence[int] | None = None,
                  *, progress: bool | None = None) -> KeptQK:
        """Run ``lens`` once on one text, keeping the queries and keys of ``layers`` from the
        hooks the backend declares (``lens.backend.layer_qk``: ``hook_rot_q``/``hook_rot_k``
        with RoPE, ``hook_q``/``hook_k`` without).

        ``progress``: a bar over the layers run (default: from ``PROGRESS_MIN_TOKENS`` tokens).
        An interrupt leaves the model as it was (no hook or attention switch stays behind).
        """
        layers = lens.self_attention_layers if layers is None else list(layers)
        if not layers:
            raise InputError("layers is empty: pass at least one layer index")
        # negative counts from the end; a cross-attention layer (Llama 3.2 Vision) refuses
        layers = [lens.require_self_attention(layer, "attention_patterns") for layer in layers]
        tokens = lens.to_tokens(text)
        if tokens.shape[0] != 1:
            raise InputError(f"attention patterns take one text, got a batch of {tokens.shape[0]}")
        specs = {layer: lens.backend.layer_qk(lens.bridge, layer) for layer in layers}
        q: dict[int, torch.Tensor] = {}
        k: dict[int, torch.Tensor] = {}
        last = max(layers)
        bar = None
        if progress or (progress is None and tokens.shape[-1] >= PROGRESS_MIN_TOKENS):
            bar = progress_bar(len(layers), f"{lens.name}: keeping q/k", leave=False)

        def keep(store: dict[int, torch.Tensor], layer: int, stop: bool = False):
            def hook(tensor: torch.Tensor, hook: Any) -> None:
                # [pos, heads, d_head], row-major (the sdpa path hands a transposed view)
                store[layer] = tensor[0].detach().clone(memory_format=torch.contiguous_format)
                if bar is not None and store is k:
                    bar.update(1)
                if stop:  # nothing after the last kept keys is needed: skip its N^2 scores
                    raise _Enough
            return hook

        hooks = []
        for layer in layers:
            hooks.append((lens.hook_name(specs[layer].q_hook), keep(q, layer)))
            hooks.append((lens.hook_name(specs[layer].k_hook),
                          keep(k, layer, stop=layer == last)))
        # without stop_at_layer (lensnb's hooked Llama 3.2 Vision) _Enough ends the run instead
        stop_at = {"stop_at_layer": last + 1} if lens.capabilities.stop_at_layer else {}
        try:  # memory-efficient attention: no layer builds its N^2 scores
            with torch.no_grad(), lens.attention_for((), tokens):
                lens.bridge.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None, **stop_at)
        except _Enough:
            pass
        finally:
            if bar is not None:
                bar.close()
        missing = [la for la in layers if la not in q or la not in k]
        if missing:
            hooks = sorted({h for la in missing for h in (specs[la].q_hook, specs[la].k_hook)})
            raise BackendError(f"the query/key hooks {hooks} did not fire for layers {missing}")
        return cls({la: q[la] for la in layers}, {la: k[la] for la in layers}, specs)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def layers(self) -> list[int]:
        return list(self.q)

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept queries and keys (plus per-row normalisers)."""
        qk = sum(t.numel() * t.element_size() for t in (*self.q.values(), *self.k.values()))
        return qk + sum(t.numel() * t.element_size() for t in self._lse.values())

    def _check(self, layer: int, heads: Sequence[int]) -> None:
        if layer not in self.q:
            raise IndexRangeError(f"layer {layer!r} was not kept: kept layers are {self.layers}")
        for h in heads:
            check_index(h, self.n_heads, "query head", plural="heads")

    def _scores(self, layer: int, heads: Sequence[int], q0: int, q1: int, step: int = 1,
                ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Masked scores of rows ``q0..q1`` of ``heads`` in blocks.

        Yields ``(row_start, scores [heads, rows, n_keys], lse [heads, rows])`` where
        ``n_keys`` is the block's last row + 1 (causal: no row sees a later key) and ``lse`` the
        rows' log-sum-exp (the softmax normaliser). Heads are grouped by KV head so each block
        is one matmul per KV head; blocks hold a multiple of ``step`` rows (aligned pooling).
        Working memory: about ``CHUNK_BYTES``.
        """
        self._check(layer, heads)
        q_all, k_all, spec = self.q[layer], self.k[layer], self.specs[layer]
        per_row = max(1, len(heads)) * self.n_pos * 4 * 2
        rows = max(step, (CHUNK_BYTES // per_row) // step * step)
        kv_of = [h // self.group_size for h in heads]
        groups = [(kv, [i for i, g in enumerate(kv_of) if g == kv]) for kv in sorted(set(kv_of))]
        full = q0 == 0 and q1 == self.n_pos  # then the rows' normalisers are kept
        lses = {h: torch.empty(self.n_pos, device=q_all.device) for h in heads} if full else {}
        for start in range(q0, q1, rows):
            stop = min(q1, start + rows)
            if len(groups) == 1:
                kv, idx = groups[0]
                qh = q_all[start:stop, heads].transpose(0, 1)  # [h, rows, d]
                s = scores_block(qh, k_all[:, kv], spec, start, stop)
            else:
                s = torch.empty(len(heads), stop - start, stop, device=q_all.device)
                for kv, idx in groups:
                    qh = q_all[start:stop, [heads[i] for i in idx]].transpose(0, 1)
                    s[idx] = scores_block(qh, k_all[:, kv], spec, start, stop)
            lse = torch.logsumexp(s, dim=-1)  # [h, rows]
            for j, h in enumerate(lses):
                lses[h][start:stop] = lse[j]
            yield start, s, lse
        for h, t in lses.items():  # only a pass that ran to the end (not interrupted) counts
            self._lse[(layer, h)] = t

    def _rows(self, layer: int, heads: Sequence[int], q0: int, q1: int, step: int = 1,
              ) -> Iterator[tuple[int, torch.Tensor]]:
        """Pattern rows ``q0..q1`` of ``heads`` in blocks: ``(row_start, [heads, rows, pos])``."""
        for start, s, lse in self._scores(layer, heads, q0, q1, step):
            out = s.new_zeros(s.shape[0], s.shape[1], self.n_pos)
            torch.exp(s - lse[..., None], out=out[..., :s.shape[-1]])
            yield start, out

    def normalisers(self, layer: int, head: int) -> torch.Tensor:
        """Log-sum-exp of every row's scores ``[pos]`` (one pass over the head; then cached)."""
        self._check(layer, [head])
        if (layer, head) not in self._lse:
            for _ in self._scores(layer, [head], 0, self.n_pos):
                pass
        return self._lse[(layer, head)]

    # ------------------------------------------------------------------ patterns
    def pattern(self, layer: int, heads: int | Sequence[int] | None = None,
                rows: slice | None = None) -> torch.Tensor:
        """Exact pattern rows ``[heads, rows, pos]`` (``[rows, pos]`` for one int head), float32.

        Equals ``hook_pattern[0, heads, rows]``. The whole ``[n_heads, pos, pos]`` of a long
        text is large: ask for the heads and rows you need (``block`` for a window).
        """
        one = isinstance(heads, int)
        hs = self._heads(heads)
        q0, q1, _ = (rows or slice(None)).indices(self.n_pos)
        if q1 <= q0:
            raise IndexRangeError(f"rows {rows!r} select no query position of {self.n_pos}")
        out = torch.cat([blk for _, blk in self._rows(layer, hs, q0, q1)], dim=1)
        return out[0] if one else out

    def _heads(self, heads: int | Sequence[int] | None) -> list[int]:
        if heads is None:
            return list(range(self.n_heads))
        return [heads] if isinstance(heads, int) else list(heads)

    def block(self, layer: int, heads: int | Sequence[int] | None, q0: int, q1: int,
              k0: int = 0, k1: int | None = None) -> torch.Tensor:
        """Exact window ``pattern[heads, q0:q1, k0:k1]`` ``[heads, q1-q0, k1-k0]`` (``[q, k]``
        for one int head), normalised over all keys, never holding more than a block of rows."""
        one = isinstance(heads, int)
        hs = self._heads(heads)
        k1 = self.n_pos if k1 is None else k1
        self._check_window(q0, q1, k0, k1)
        parts = []
        for _start, s, lse in self._scores(layer, hs, q0, q1):
            out = s.new_zeros(s.shape[0], s.shape[1], k1 - k0)
            hi = min(k1, s.shape[-1])
            if hi > k0:
                torch.exp(s[..., k0:hi] - lse[..., None], out=out[..., :hi - k0])
            parts.append(out)
        out = torch.cat(parts, dim=1)
        return out[0] if one else out

    def row(self, layer: int, head: int, query: int) -> torch.Tensor:
        """Weights query position ``query`` gives every key ``[pos]`` (zeros where masked)."""
        query = self._check_pos(query, "query")
        return self.pattern(layer, head, slice(query, query + 1))[0]

    def column(self, layer: int, head: int, key: int) -> torch.Tensor:
        """Weight every query position gives key ``key`` ``[pos]`` (zeros where masked).

        Needs every row's normaliser: the first column of a head costs one pass over its
        scores (``normalisers``), later ones ``pos x d_head``.
        """
        key = self._check_pos(key, "key")
        lse = self.normalisers(layer, head)
        spec = self.specs[layer]
        kv = head // self.group_size
        q = self.q[layer][:, head].float()  # [pos, d]
        s = torch.matmul(q, self.k[layer][key, kv].float()).mul_(spec.scaling)  # [pos]
        if spec.softcap is not None:
            s = torch.tanh(s / spec.softcap) * spec.softcap
        qi = torch.arange(self.n_pos, device=s.device)
        hidden = qi < key
        if spec.window is not None:
            hidden |= qi - key >= spec.window
        return torch.exp(s - lse).masked_fill_(hidden, 0.0)

    def _check_pos(self, pos: int, what: str) -> int:
        """``pos`` as ``0..n_pos-1`` (negative counts from the end)."""
        return check_position(pos, self.n_pos, f"{what} position")

    def _check_window(self, q0: int, q1: int, k0: int, k1: int) -> None:
        if not (0 <= q0 < q1 <= self.n_pos and 0 <= k0 < k1 <= self.n_pos):
            raise IndexRangeError(
                f"window q[{q0}:{q1}] k[{k0}:{k1}] is not inside 0..{self.n_pos} positions"
            )

    def pooled(self, layer: int, heads: int | Sequence[int] | None = None, q0: int = 0,
               q1: int | None = None, k0: int = 0, k1: int | None = None, size: int = 512,
               ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Max-pooled window ``[q0:q1, k0:k1]`` of the patterns of ``heads`` (an overview).

        Returns ``([heads, ceil(rows/fq), ceil(keys/fk)], (fq, fk))``: each output cell is the
        largest weight in a ``fq x fk`` block of cells (from ``q0``, ``k0``; edge blocks
        ragged), chosen so neither side exceeds ``size``. ``fq = fk = 1`` (the exact window)
        when the window fits. One pass over the scores; the N^2 weights are never held.
        """
        hs = self._heads(heads)
        q1 = self.n_pos if q1 is None else q1
        k1 = self.n_pos if k1 is None else k1
        self._check_window(q0, q1, k0, k1)
        if not isinstance(size, int) or size < 1:
            raise InputError(f"size must be a positive int, got {size!r}")
        fq, fk = math.ceil((q1 - q0) / size), math.ceil((k1 - k0) / size)
        n_cols = math.ceil((k1 - k0) / fk)
        blocks = []
        for _start, s, lse in self._scores(layer, hs, q0, q1, step=fq):
            out = s.new_zeros(s.shape[0], s.shape[1], n_cols)
            hi = min(k1, s.shape[-1])
            if hi > k0:  # max of exp(s - lse) over a block = exp(max(s) - lse), row by row
                m = _pool_keys(s[..., k0:hi], fk)
                torch.exp(m - lse[..., None], out=out[..., :m.shape[-1]])
            if fq > 1:
                out = F.max_pool2d(out[None], (fq, 1), ceil_mode=True)[0]
            blocks.append(out)
        return torch.cat(blocks, dim=1), (fq, fk)


def attention_patterns(lens: Lens, text: TextOrTokens, layers: Sequence[int] | None = None,
                       *, progress: bool | None = None) -> KeptQK:
    """Exact attention patterns of one text at any length, without the ``pos^2`` matrices.

    Runs ``lens`` once (memory-efficient attention, up to the last of ``layers``; every
    self-attention layer by default) and keeps the queries and keys as the model uses them.
    Then ``.row(layer, head, q)``,
    ``.column(layer, head, k)``, ``.pattern(layer, heads, rows=slice(..))`` (rows),
    ``.block(layer, heads, q0, q1, k0, k1)`` (a window) and ``.pooled(layer, heads, size=512)``
    (a max-pooled overview) recompute what ``hook_pattern`` holds, block by block.
    ``progress``: a bar over layers (default: on from 2,048 tokens).
    """
    return KeptQK.from_lens(lens, text, layers, progress=progress)


def summaries_pooled(kept: KeptQK, layer: int, kv_group: int, size: int = 256,
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple[int, int]]:
    """The heads of one KV group and their summaries, max-pooled to at most ``size`` a side.

    Returns ``(heads [group_size, r, c], {"mean"|"max"|"spread": [r, c]}, (fq, fk))`` where
    the summaries are ``gqa.group_summaries`` of the exact patterns, pooled block by block.
    """
    from ..core.kv_groups import group_summaries

    kv_group = check_index(kv_group, kept.n_kv, "KV group")
    heads = list(range(kv_group * kept.group_size, (kv_group + 1) * kept.group_size))
    n = kept.n_pos
    f = math.ceil(n / size)
    parts: dict[str, list[torch.Tensor]] = {"heads": [], "mean": [], "max": [], "spread": []}

    def pool(x: torch.Tensor) -> torch.Tensor:  # [c, r, k] -> pooled
        return F.max_pool2d(x[None], (f, f), ceil_mode=True)[0] if f > 1 else x

    for _, blk in kept._rows(layer, heads, 0, n, step=f):  # blk [g, rows, pos]
        parts["heads"].append(pool(blk))
        for name, t in group_summaries(blk, 1).items():  # [1, rows, pos]
            parts[name].append(pool(t)[0])
    heads_t = torch.cat(parts.pop("heads"), dim=1)
    return heads_t, {name: torch.cat(v, dim=0) for name, v in parts.items()}, (f, f)
