"""Models already on this machine: the embedded demos (package data) and the local Hugging Face
cache. Nothing here downloads."""

from __future__ import annotations

from pathlib import Path

from ..paths import ASSETS

DEMOS: dict[str, Path] = {
    "demo": ASSETS / "demo",
    "demo-vision": ASSETS / "demo_vision",
}


def cached_path(model_id: str) -> Path | None:
    """The snapshot directory of ``model_id`` (``"meta-llama/Llama-3.1-8B"``) in the local Hugging
    Face cache, or ``None`` when it is not there. Never downloads: ``if lensnb.cached_path(id)``
    is how a notebook asks whether a model can be loaded offline."""
    if model_id.count("/") != 1 or Path(model_id).exists():
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(model_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if (path / "config.json").is_file() else None
