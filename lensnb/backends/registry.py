"""Which architectures lensnb can hook: TransformerLens's bridge adapters plus lensnb's own
backends."""

from __future__ import annotations


def supported_architectures() -> list[str]:
    """Architectures lensnb can load: TransformerLens's adapters plus lensnb's own."""
    from transformer_lens.factories.architecture_adapter_factory import (
        ArchitectureAdapterFactory,
    )

    from .mllama.loading import ARCHITECTURES as VISION

    ArchitectureAdapterFactory.discover_entry_points()
    return sorted(set(ArchitectureAdapterFactory._adapters) | set(VISION))
