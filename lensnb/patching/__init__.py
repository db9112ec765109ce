"""Causal experiments over a ``Lens``: batched activation patching, attribution patching, causal
tracing and ablation (see ``activation.py``, ``causal_trace.py``, ``ablation.py``)."""
