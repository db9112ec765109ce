"""Where lensnb's shipped files live: ``lensnb/assets/`` inside the installed package (found
through ``importlib.resources``), or ``$LENSNB_ASSETS`` when set."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def _assets() -> Path:
    override = os.environ.get("LENSNB_ASSETS")
    if override:
        return Path(override).expanduser()
    # lensnb is installed from a directory (wheel, sdist or editable), so its resources are files
    return Path(str(files("lensnb") / "assets"))


ASSETS = _assets()
CONFIGS_DIR = ASSETS / "configs"
