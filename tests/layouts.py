"""Constants the tests share (``from layouts import LAYOUTS, DEMO_DIR``): a plain module, since
every ``conftest.py`` is imported as the top-level module ``conftest`` and one shadows another."""

from __future__ import annotations

from pathlib import Path

from lensnb.selfcheck.layouts import FAMILIES

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "lensnb" / "assets" / "demo"

# Small versions of real attention layouts: (model_type, config overrides).
ATTENTION_LAYOUTS: dict[str, tuple[str, dict]] = {
    "mha-llama": ("llama", dict(num_attention_heads=4, num_key_value_heads=4)),
    "gqa-llama3": ("llama", dict(num_attention_heads=8, num_key_value_heads=2)),
    "gqa-mistral-32-8": ("mistral", dict(num_attention_heads=32, num_key_value_heads=8,
                                         hidden_size=128, head_dim=8)),
    "gqa-qwen2-bias": ("qwen2", dict(num_attention_heads=8, num_key_value_heads=2)),
    "mqa-gemma": ("gemma", dict(num_attention_heads=8, num_key_value_heads=1, head_dim=16)),
}
# ... and of every other family lensnb hooks (GPT-2, GPT-NeoX, Phi-3, Qwen3, OLMo-2, Gemma 2/3;
# lensnb.check() builds the same ones): the parametrised tests run on all of them.
LAYOUTS: dict[str, tuple[str, dict]] = {**ATTENTION_LAYOUTS, **FAMILIES}
