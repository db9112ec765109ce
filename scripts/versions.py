"""Print the versions of the packages lensnb's numbers depend on (one line, for test logs)."""

from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("torch", "transformers", "transformer-lens", "tokenizers", "accelerate", "anywidget",
            "plotly", "kaleido", "jupyterlab", "nnsight", "gguf")


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


if __name__ == "__main__":
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
