"""Packaging: the wheel carries everything a pip user needs (demo models, the config catalogue,
the Mllama processor config, the widgets' JS/CSS, ``py.typed``), installed outside the repository
with ``--no-deps``; and the lock pins what the suite runs on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAX_WHEEL_MB = 25

# Run in a fresh interpreter, from a folder outside the repository, with only the installed
# wheel on the path ahead of the venv's dependencies.
PROBE = r"""
import json, sys
import torch
import lensnb
from lensnb.rope import inv_freq
import lensnb.export
out = {"file": lensnb.__file__, "rows": len(lensnb.model_table())}
lens = lensnb.load("demo")
logits = lens("def add(a, b):")
out["demo_logits"] = list(logits.shape)
out["finite"] = bool(torch.isfinite(logits).all())
vision = lensnb.load("demo-vision")
from PIL import Image
img = Image.new("RGB", (64, 64), (200, 30, 30))
out["vision_logits"] = list(vision("<|image|>a picture of", images=[img]).shape)
out["inv_freq"] = len(inv_freq("meta-llama/Llama-3.1-8B"))
from importlib.resources import files
out["esm"] = (files("lensnb") / "widgets" / "static" / "attention.js").is_file()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, capture_output=True,
                   cwd=out)
    (path,) = out.glob("lensnb-*.whl")
    return path


def test_wheel_carries_the_models_and_static_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ["lensnb/assets/demo/model.safetensors", "lensnb/assets/demo/tokenizer.json",
                   "lensnb/assets/demo_vision/model.safetensors",
                   "lensnb/assets/demo_vision/processor_config.json",
                   "lensnb/assets/mllama_processor/preprocessor_config.json",
                   "lensnb/assets/configs/meta-llama--Llama-3.1-8B.json",
                   "lensnb/widgets/static/attention.js", "lensnb/widgets/static/common.css",
                   "lensnb/export/static/standalone.js", "lensnb/py.typed", "lensnb/rope.py",
                   "lensnb/__init__.pyi"]:
        assert needed in names, f"{needed} is missing from {wheel.name}"
    configs = [n for n in names if n.startswith("lensnb/assets/configs/") and n.endswith(".json")]
    assert len(configs) >= 14
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "scripts/"))]
    size_mb = wheel.stat().st_size / 2**20
    assert size_mb < MAX_WHEEL_MB, f"wheel is {size_mb:.1f} MB"


@pytest.mark.slow
def test_installed_wheel_loads_demos_outside_the_repository(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LENSNB_ASSETS")}
    env.update(PYTHONPATH=str(target), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).is_relative_to(target), out["file"]  # not this checkout
    assert out["rows"] >= 14
    assert out["demo_logits"][0] == 1 and out["demo_logits"][1] > 1 and out["finite"]
    assert out["esm"]
    assert out["vision_logits"][0] == 1
    assert out["inv_freq"] == 64  # Llama 3.1 8B: head_dim 128 -> 64 frequency pairs


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, ver = line.partition("==")
            pins[name.lower().replace("_", "-")] = ver
    return pins


def test_lock_pins_every_requirement_exactly():
    pins = _lock()
    for name in ["torch", "transformers", "transformer-lens", "anywidget", "plotly", "kaleido",
                 "jupyterlab", "pytest", "playwright", "nnsight", "accelerate", "tokenizers"]:
        assert name in pins, f"{name} is not in requirements/lock.txt"
    assert pins["torch"].endswith("+cpu"), "the lock's torch is the CPU build"
    assert not [n for n, v in pins.items() if not v or any(c in v for c in "<>=~*, ")]


@pytest.mark.skipif(os.environ.get("LENSNB_LATEST") == "1",
                    reason="make test-latest runs on the newest versions, not the lock's")
def test_this_environment_is_the_lock():
    """`make test` installs the lock exactly: the suite's numbers come from these versions."""
    pins = _lock()
    off = {}
    for name in ["torch", "transformers", "transformer-lens", "tokenizers", "anywidget",
                 "plotly", "accelerate"]:
        if version(name) != pins[name]:
            off[name] = (version(name), pins[name])
    assert not off, f"installed != lock: {off} (run `make install`, or `make lock` on purpose)"


def test_readme_states_the_locked_versions():
    """README's 'Tested versions' table is the lock's, so it cannot drift from it."""
    import re

    pins = _lock()
    rows = [r for r in re.findall(r"^\| ([a-z-]+) \| ([^ |]+) \| [^|]+ \|$",
                                  (REPO / "README.md").read_text(), re.M) if r[0] != "package"]
    assert {"torch", "transformers", "transformer-lens", "anywidget", "plotly"} <= dict(rows).keys()
    for name, ver in rows:
        assert pins.get(name) == ver, f"README says {name} {ver}, the lock has {pins.get(name)}"
