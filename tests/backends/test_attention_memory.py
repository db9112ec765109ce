"""A pattern request that cannot fit fails up front with the size it needs, before any forward
pass (``lensnb.backends.attention_memory``, run by every backend's attention switch)."""

from __future__ import annotations

import pytest

from lensnb import PatternMemoryError
from lensnb.backends import attention_memory


def test_too_large_pattern_raises_up_front(demo_lens, tokens, monkeypatch):
    monkeypatch.setenv(attention_memory.MEMORY_LIMIT_ENV, str(10**6))  # 1 MB for patterns
    fired = []
    with pytest.raises(PatternMemoryError, match=r"\[1, 8, 200, 200\] float32 is 1\.3 MB"
                       ) as err:
        demo_lens.run_with_cache(tokens, names=["blocks.0.hook_resid_post",
                                                "blocks.*.attn.hook_pattern"])
    assert "attention_patterns" in str(err.value) and "AttentionExplorer" in str(err.value)
    with pytest.raises(PatternMemoryError):
        demo_lens.run_with_hooks(tokens, fwd_hooks=[
            ("blocks.0.hook_resid_post", lambda t, hook: fired.append(1)),
            ("blocks.3.attn.hook_attn_scores", lambda t, hook: None)])
    assert not fired  # raised before the forward pass started
    # residual hooks are fine at the same budget, and "none" lifts the limit
    demo_lens.run_with_cache(tokens, names="blocks.0.hook_resid_post")
    monkeypatch.setenv(attention_memory.MEMORY_LIMIT_ENV, "none")
    demo_lens.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")
    monkeypatch.setenv(attention_memory.MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match="number of bytes or 'none'"):
        demo_lens.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")


def test_needed_bytes_formula(demo_lens, monkeypatch):
    """One layer's scores are batch x heads x pos^2 float32; a cache keeps one per hook."""
    assert attention_memory.pattern_bytes(demo_lens.bridge, 2, 100) == 2 * 8 * 100 * 100 * 4
    one = 8 * 1000 * 1000 * 4
    monkeypatch.setenv(attention_memory.MEMORY_LIMIT_ENV, str(5 * one))
    attention_memory.check_pattern_memory(demo_lens.bridge, ["blocks.0.attn.hook_pattern",
                                                    "blocks.1.attn.hook_pattern"], 1, 1000,
                                        cache=True)  # 3 working + 2 kept = 5 layers
    with pytest.raises(PatternMemoryError):
        attention_memory.check_pattern_memory(
            demo_lens.bridge, [f"blocks.{i}.attn.hook_pattern" for i in range(3)], 1, 1000,
            cache=True)
