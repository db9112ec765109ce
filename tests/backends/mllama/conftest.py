"""Unit tier: tiny random Llama 3.2 Vision (Mllama) models built from configs (fixtures in
tests/mllama_fixtures.py), compared with Hugging Face's MllamaForConditionalGeneration."""

from mllama_fixtures import hf_mllama, mllama_dir, vision_lens  # noqa: F401
