"""Generator backends: extractive spans, OpenAI-compatible HTTP, local transformers path."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from drag.generate import (
    ExtractiveGenerator,
    OpenAICompatibleGenerator,
    TransformersGenerator,
    answer_matches,
    chat_completions_url,
    short_span,
)
from marketplace.errors import ConfigError, DragError


def test_short_span_extracts_the_answer_entity() -> None:
    q = "What is the capital of Zorvia?"
    assert short_span("The capital of Zorvia is Quelton.", q) == "Quelton"
    assert short_span("The founder of Zorvia was Mira Kell.", "Who was the founder of Zorvia?") == (
        "Mira Kell"
    )
    assert short_span("The capital of Zorvia is", q) is None
    long = "The capital of Zorvia is a sprawling port city with many old stone bridges."
    assert short_span(long, q) is None


def test_extractive_generator_with_embeddings_picks_the_right_sentence() -> None:
    gen = ExtractiveGenerator()
    contexts = [
        "Zorvia is a small island nation. Its currency is the Dramel.",
        "Tourists love Zorvia for its beaches. The capital of Zorvia is Quelton.",
        "Bread is baked from flour and water.",
    ]
    answer = gen.generate("What is the capital of Zorvia?", contexts)
    assert answer.text == "Quelton" and answer.support == (1,)
    assert gen.generate("What is the currency of Zorvia?", contexts).text == "Dramel"
    assert gen.generate("anything", []).text == ""
    sentence = ExtractiveGenerator(answer_style="sentence")
    assert sentence.generate("What is the capital of Zorvia?", contexts).text == (
        "The capital of Zorvia is Quelton."
    )


def test_votes_follow_agreement_and_rank() -> None:
    gen = ExtractiveGenerator(embedder=None)
    q = "What is the capital of Zorvia?"
    polluted_first = [
        "The capital of Zorvia is Brakmor.",
        "The capital of Zorvia is Quelton.",
        "The capital of Zorvia is Quelton.",
    ]
    assert gen.generate(q, polluted_first).text == "Quelton"  # two votes beat one
    assert gen.generate(q, polluted_first[:2]).text == "Brakmor"  # rank breaks a tie
    assert answer_matches("the Quelton.", ["quelton"]) and not answer_matches("", ["x"])


def test_openai_compatible_generator_speaks_chat_completions() -> None:
    seen: dict = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["body"] = json.loads(request.content)
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(200, json={"choices": [{"message": {"content": " Quelton \n"}}]})

    gen = OpenAICompatibleGenerator(
        "http://llm.local:8000", "llama-3.2-3b", api_key="k", transport=httpx.MockTransport(handler)
    )
    answer = gen.generate("What is the capital of Zorvia?", ["The capital of Zorvia is Quelton."])
    assert answer.text == "Quelton"
    assert seen["url"] == "http://llm.local:8000/v1/chat/completions"
    assert seen["body"]["model"] == "llama-3.2-3b" and seen["body"]["temperature"] == 0.0
    assert "[1] The capital of Zorvia is Quelton." in seen["body"]["messages"][1]["content"]
    assert seen["auth"] == "Bearer k"
    assert chat_completions_url("http://h/v1/") == "http://h/v1/chat/completions"

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="overloaded")

    bad = OpenAICompatibleGenerator("http://h", "m", transport=httpx.MockTransport(broken))
    with pytest.raises(DragError, match="HTTP 500"):
        bad.generate("q", ["c"])
    with pytest.raises(ConfigError, match="http"):
        OpenAICompatibleGenerator("llm.local", "m")


def test_transformers_generator_needs_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.json missing"):
        TransformersGenerator(tmp_path / "no-model")
