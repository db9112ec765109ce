"""Llama 3.2 Vision (Mllama): a hooked model with TransformerLens hook names, image inputs
through the Mllama processor, and the text decoder alone.

- ``hooked``: ``HookedMllama``, the hooked model (a ``HookedRootModule`` over the HF weights).
- ``images``: turns text + PIL images into checked model inputs; maps image tokens back to pixels.
- ``text_only``: the language model alone as a plain Llama (``Lens.text_only``,
  ``save_text_only``).
- ``loading``: builds a ``Lens`` for a Mllama checkpoint (called by ``lensnb.load``).
"""
