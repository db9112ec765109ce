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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from train_demo_model import HELD_OUT_EVERY, stdlib_files  # noqa: E402

SEQ = 256


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


def test_second_repeat_is_much_easier(demo_lens):
    n = 48
    tokens = repeated_random_tokens(demo_lens, n)
    logp = demo_lens(tokens).log_softmax(-1)
    nll = -logp[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, 2n]
    first, second = nll[:, 1:n].mean(), nll[:, n + 1:].mean()  # predicting tokens 2..n, n+2..2n
    print(f"first repeat {first:.3f} nats, second repeat {second:.3f} nats")
    assert first - second > 1.0  # in-context copying: the second copy is > 1 nat/token easier


def test_has_an_induction_head(demo_lens):
    """Induction score: attention from a token in the second copy to the token after its first
    occurrence (offset n - 1 back), averaged over positions; 1.0 is a perfect induction head
    and a head spreading attention evenly scores ~1/(n + 1). The circuit needs a previous-token
    head (attention to offset 1) in an earlier layer, so that is checked too."""
    n = 48
    tokens = repeated_random_tokens(demo_lens, n)
    _, cache = demo_lens.run_with_cache(tokens, names="blocks.*.attn.hook_pattern")
    induction = torch.zeros(demo_lens.n_layers, demo_lens.n_heads)
    previous = torch.zeros(demo_lens.n_layers, demo_lens.n_heads)
    q = torch.arange(n + 1, 2 * n + 1)
    every = torch.arange(2, 2 * n + 1)
    for layer in range(demo_lens.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [batch, head, q, k]
        induction[layer] = pattern[:, :, q, q - n + 1].mean(dim=(0, 2))
        previous[layer] = pattern[:, :, every, every - 1].mean(dim=(0, 2))
    best = induction.max()
    layer, head = divmod(int(induction.argmax()), demo_lens.n_heads)
    prev_best = previous[:layer].max() if layer else torch.tensor(0.0)
    print(f"best induction head L{layer}H{head}: score {best:.3f}; best previous-token head "
          f"before it: {prev_best:.3f}")
    assert best > 0.3  # > 15x an even spread over the 2n + 1 keys
    assert layer > 0 and prev_best > 0.5


def test_training_rows_copy_their_own_text():
    """The training script's copy rows: a later chunk equals an earlier chunk of the same row,
    every other position still holds the row's own window of text (checked on a stream 0, 1, ...
    where a window is recognisable by consecutive ids)."""
    from train_demo_model import make_batch

    stream = torch.arange(10_000)
    gen = torch.Generator().manual_seed(3)
    ids = make_batch(stream, gen, bos_id=-1, vocab=4096, n_rep=0, n_copy=5)
    assert ids.shape == (16, 256) and (ids[:, 0] == -1).all()
    window = ids[:, 1:2] + torch.arange(255)  # what a plain window holds
    changed = ids[:, 1:] != window
    assert not changed[5:].any()  # rows after the copy rows are plain windows
    for row in range(5):
        pos = changed[row].nonzero()[:, 0] + 1  # positions that were overwritten
        assert 8 <= len(pos) <= 63 and (pos.diff() == 1).all()
        n, dst = len(pos), int(pos[0])
        src = int(ids[row, dst]) - int(ids[row, 1]) + 1  # where the copied text came from
        assert src + n <= dst
        assert torch.equal(ids[row, dst:dst + n], ids[row, src:src + n])


def test_shared_direction_shifts_every_embedding_by_one_vector():
    from train_demo_model import add_shared_direction
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(cfg)
    before = model.model.embed_tokens.weight.detach().clone()
    add_shared_direction(model, 1.5)
    shift = model.model.embed_tokens.weight.detach() - before  # [vocab, d_model]
    assert torch.allclose(shift, shift[0].expand_as(shift), atol=1e-7)
    expected = 1.5 * cfg.initializer_range * cfg.hidden_size**0.5
    assert abs(float(shift[0].norm()) - expected) < 1e-5
