"""Fixtures the backend tests share."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def tokens(demo_lens) -> torch.Tensor:
    """200 random demo token ids after BOS ``[1, 200]`` (seeded)."""
    g = torch.Generator().manual_seed(0)
    t = torch.randint(2, demo_lens.tokenizer.vocab_size, (1, 200), generator=g)
    t[0, 0] = demo_lens.tokenizer.bos_token_id
    return t
