"""``lensnb.check()``: a self-test of the installed torch / transformers / TransformerLens stack.

lensnb's numbers are only as right as the libraries under it, and Colab or a cluster brings its
own versions. ``check()`` builds tiny random models of every layout lensnb supports (from
configs written here: no files, no network), runs each through lensnb and through plain Hugging
Face (eager attention, an independent copy of the same weights), and compares:

========================  ==================================================================
invariant                 truth
========================  ==================================================================
logits                    HF eager forward
hook_pattern              HF ``output_attentions`` (eager)
split-QKV locality        patching KV group ``g``'s key input changes exactly the query heads
                          of ``g`` (others bit-identical to a clean split-QKV run); logits
                          with split QKV on equal HF
generation (fast/bridge)  ``lens.generate`` with a patch and the KV cache equals a loop that
                          re-runs the whole sequence every step; a ``hook_pattern`` hook sees
                          every key (prompt + cache) at every step
vision generation         greedy ``lens.generate(prompt, images=[img])`` equals HF ``generate``
========================  ==================================================================

It never raises: an exception inside one check becomes that cell's failure, with the message.
"""

from .result import CheckResult, CheckRow
from .runner import check

__all__ = ["CheckResult", "CheckRow", "check"]
