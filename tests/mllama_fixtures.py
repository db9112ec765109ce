"""Tiny random Llama 3.2 Vision (Mllama) models for the unit tier, shared by
tests/backend/vision/ and tests/widgets/test_image_attention.py (import the fixtures:
``from mllama_fixtures import vision_lens, ...``). Compared with Hugging Face's
``MllamaForConditionalGeneration`` (eager attention)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TILE = 28  # tile side in pixels: 2 x 2 patches of 14 px, so 5 image tokens per tile


def tiny_mllama(tokenizer, seed: int = 0):
    """A random 4-layer Mllama (cross-attention at layers 1 and 3, GQA 4/2, llama3 RoPE) whose
    tanh gates are random too (HF initialises them to 0, which would hide the image)."""
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    image_id = tokenizer.convert_tokens_to_ids("<|image|>")
    cfg = MllamaConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1,
                           attention_heads=2, intermediate_size=64, vision_output_dim=64,
                           image_size=TILE, patch_size=14, max_num_tiles=4,
                           intermediate_layers_indices=[0]),
        text_config=dict(vocab_size=image_id, hidden_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                         cross_attention_layers=[1, 3], max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id,
                         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0,
                                              factor=8.0, low_freq_factor=1.0,
                                              high_freq_factor=4.0,
                                              original_max_position_embeddings=64)),
        image_token_index=image_id,
    )
    cfg.architectures = ["MllamaForConditionalGeneration"]
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gate" in name:
                p.normal_(0.0, 1.0)
    return model.eval()


@pytest.fixture(scope="session")
def mllama_dir(tmp_path_factory) -> Path:
    """A saved tiny Mllama with the demo tokenizer plus ``<|image|>`` (id == vocab_size, as in
    Llama 3.2 Vision) and a 28 px / 4-tile image processor."""
    from transformers import AutoTokenizer, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tok = AutoTokenizer.from_pretrained(REPO / "lensnb" / "assets" / "demo")
    tok.add_special_tokens({"additional_special_tokens": ["<|image|>"]})
    model = tiny_mllama(tok)
    path = tmp_path_factory.mktemp("mllama")
    model.save_pretrained(path)
    proc = MllamaProcessor(
        image_processor=MllamaImageProcessorPil(size={"height": TILE, "width": TILE},
                                                max_image_tiles=4),
        tokenizer=tok)
    proc.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def vision_lens(mllama_dir):
    import lensnb

    return lensnb.load(mllama_dir)


@pytest.fixture(scope="session")
def hf_mllama(mllama_dir):
    from transformers import MllamaForConditionalGeneration

    return MllamaForConditionalGeneration.from_pretrained(
        mllama_dir, attn_implementation="eager").eval()


def picture(w: int, h: int, seed: int = 0):
    """A random-noise RGB picture (every pixel matters to the vision tower)."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    arr = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()
    return Image.fromarray(arr, "RGB")
