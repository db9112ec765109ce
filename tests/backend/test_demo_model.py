"""The embedded demo model learned real structure: measured here, not asserted by fiat.

Held-out text is the same split the training script holds out (every 20th standard-library
file); the unigram baseline is the held-out text's own token entropy, the best any unigram
model could do on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from train_demo_model import HELD_OUT_EVERY, stdlib_files  # noqa: E402

SEQ = 256

# Measured, not asserted by fiat: the shipped demo model has NOT formed induction heads yet (the
# second copy of a random sequence is ~0.2 nats easier, best induction score ~0.04). These two
# tests state the goal and are strict xfails: they fail loudly once a retrained model passes,
# so the marker must then be removed. See scripts/train_demo_model.py and issue 3's note.
NO_INDUCTION_YET = pytest.mark.xfail(
    strict=True, reason="demo model has no induction heads yet (measured gap ~0.2 nats)")


@pytest.fixture(scope="module")
def held_out_tokens(demo_lens) -> torch.Tensor:
    files = [f for i, f in enumerate(stdlib_files()) if i % HELD_OUT_EVERY == 0]
    text = "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    ids = demo_lens.tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids)


def test_held_out_loss_far_below_unigram(demo_lens, held_out_tokens):
    counts = torch.bincount(held_out_tokens, minlength=demo_lens.facts.vocab_size).double()
    p = counts[counts > 0] / counts.sum()
    unigram_entropy = float(-(p * p.log()).sum())  # nats/token; no unigram model beats this

    gen = torch.Generator().manual_seed(0)
    starts = torch.randint(0, len(held_out_tokens) - SEQ, (16,), generator=gen)
    bos = demo_lens.tokenizer.bos_token_id
    rows = torch.stack([torch.cat([torch.tensor([bos]), held_out_tokens[s:s + SEQ - 1]])
                        for s in starts.tolist()])
    logits = demo_lens(rows)
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
    print(f"held-out loss {loss:.3f} nats vs unigram entropy {unigram_entropy:.3f}")
    assert loss < 0.6 * unigram_entropy


def repeated_random_tokens(lens, n: int = 48, batch: int = 8, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    r = torch.randint(3, lens.facts.vocab_size, (batch, n), generator=gen)
    bos = torch.full((batch, 1), lens.tokenizer.bos_token_id)
    return torch.cat([bos, r, r], dim=1)  # [batch, 1 + 2n]


@NO_INDUCTION_YET
def test_second_repeat_is_much_easier(demo_lens):
    n = 48
    tokens = repeated_random_tokens(demo_lens, n)
    logp = demo_lens(tokens).log_softmax(-1)
    nll = -logp[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, 2n]
    first, second = nll[:, 1:n].mean(), nll[:, n + 1:].mean()  # predicting tokens 2..n, n+2..2n
    print(f"first repeat {first:.3f} nats, second repeat {second:.3f} nats")
    assert first - second > 3.0


@NO_INDUCTION_YET
def test_has_an_induction_head(demo_lens):
    """Induction score: attention from a token in the second copy to the token after its first
    occurrence (offset n - 1 back), averaged over positions; 1.0 is a perfect induction head."""
    n = 48
    tokens = repeated_random_tokens(demo_lens, n)
    _, cache = demo_lens.run_with_cache(tokens, names="blocks.*.attn.hook_pattern")
    scores = torch.zeros(demo_lens.n_layers, demo_lens.n_heads)
    for layer in range(demo_lens.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [batch, head, q, k]
        q = torch.arange(n + 1, 2 * n + 1)
        scores[layer] = pattern[:, :, q, q - n + 1].mean(dim=(0, 2))
    best = scores.max()
    layer, head = divmod(int(scores.argmax()), demo_lens.n_heads)
    print(f"best induction head L{layer}H{head}: score {best:.3f}")
    assert best > 0.4
    assert layer > 0  # induction needs a previous-token head in an earlier layer
