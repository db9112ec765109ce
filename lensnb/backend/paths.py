"""Where lensnb's shipped files live (``assets/`` at the repository root, or ``$LENSNB_ASSETS``)."""

from __future__ import annotations

import os
from pathlib import Path

ASSETS = Path(os.environ.get("LENSNB_ASSETS", Path(__file__).resolve().parents[2] / "assets"))
CONFIGS_DIR = ASSETS / "configs"
