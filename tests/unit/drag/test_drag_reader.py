"""The extractive reader: the generator failures of issue 16, each as a test."""

from __future__ import annotations

import pytest

from drag.generate import ExtractiveGenerator
from drag.reader import question_type

PERU = (
    "Peru, officially the Republic of Peru, is a country in western South America. It is "
    "bordered to the north by Ecuador and Colombia. Its capital and largest city is Lima."
)
IRON = (
    "Iron is a chemical element; it has symbol Fe and atomic number 26. It is a metal that "
    "belongs to the first transition series and group 8 of the periodic table."
)


@pytest.fixture(scope="module")
def gen() -> ExtractiveGenerator:
    return ExtractiveGenerator()


def test_answer_in_a_sentence_that_does_not_repeat_the_name(gen) -> None:
    # "Its capital ... is Lima": answered through the document's subject
    assert gen.generate("What is the capital of Peru?", [PERU]).text == "Lima"
    japan = "Japan is an island country in East Asia. Tokyo is the country's capital."
    assert gen.generate("What is the capital of Japan?", [japan]).text == "Tokyo"
    # a passage cut from the middle of a document carries its subject in brackets
    assert gen.generate("What is the capital of Peru?", ["(Peru) Its capital is Lima."]).text == (
        "Lima"
    )


def test_spans_are_trimmed_to_the_asked_type(gen) -> None:
    currency = "Peru is a country. Its currency is the sol, which has the code PEN."
    assert gen.generate("What is the currency code of Peru?", [currency]).text == "PEN"
    assert gen.generate("What is the chemical symbol of iron?", [IRON]).text == "Fe"
    assert gen.generate("What is the atomic number of iron?", [IRON]).text == "26"
    assert gen.generate("Which chemical element has the symbol Fe?", [IRON]).text == "Iron"
    paris = "Paris is the capital of France, with a population of 2.04 million in 2026."
    assert gen.generate("What is the population of Paris?", [paris]).text == "2.04 million"
    founded = "St. John's is the capital of Antigua and Barbuda. It was founded in 1632."
    assert gen.generate("When was St. John's founded?", [founded]).text == "1632"
    assert gen.generate("What is the capital of Antigua and Barbuda?", [founded]).text == (
        "St. John's"
    )


def test_answer_words_that_the_question_also_has_are_kept(gen) -> None:
    lima = "Lima is the capital and largest city of Peru."
    assert gen.generate("Which country is Lima the capital of?", [lima]).text == "Peru"
    mexico = "Mexico City is the capital and largest city of Mexico."
    assert gen.generate("Which country is Mexico City the capital of?", [mexico]).text == "Mexico"
    assert gen.generate("What is the capital of Mexico?", [mexico]).text == "Mexico City"
    singapore = "Singapore is an island country. Its capital is the city of Singapore."
    assert gen.generate("What is the capital of Singapore?", [singapore]).text == "Singapore"
    # a part of the question's longer name is no restatement of it: the clean "Republic
    # of Guatemala" once lost to a polluted copy's "Yemen" by this penalty alone
    # "Estonia's capital city of Tallinn": the possessor is what "... the capital of?" asks
    # for, unless the sentence is about another place ("Brandenburg's capital Potsdam")
    estonia = "(Estonia) Its capital city of Tallinn, along with the city of Tartu, are large."
    assert gen.generate("Which country is Tallinn the capital of?", [estonia]).text == "Estonia"
    berlin = (
        "Berlin is the capital and largest city of Germany. It is surrounded by the state of "
        "Brandenburg, bordering Brandenburg's capital Potsdam to the southwest."
    )
    assert gen.generate("Which country is Berlin the capital of?", [berlin]).text == "Germany"
    q = "Which country is Guatemala City the capital of?"
    clean = "Guatemala City is the national capital and largest city of the Republic of Guatemala."
    polluted = "Guatemala City is the national capital and largest city of Yemen."
    assert gen.generate(q, [clean, polluted]).text == "Republic of Guatemala"
    assert gen.generate(q, [polluted, clean]).meta["votes"] == pytest.approx(
        {"Yemen": 1.0, "Republic of Guatemala": 0.9}
    )


def test_abstains_with_a_low_confidence_when_nothing_answers(gen) -> None:
    answer = gen.generate("Who wrote Hamlet?", [PERU, IRON])
    assert answer.text == "" and answer.meta["abstained"] and answer.meta["confidence"] == 0.0
    sure = gen.generate("What is the capital of Peru?", [PERU])
    assert sure.meta["confidence"] > 0.9 and not sure.meta["abstained"]


def test_question_types() -> None:
    assert question_type("How many islands does Japan have?") == "number"
    assert question_type("In which year was Lima founded?") == "year"
    assert question_type("When did it end?") == "year"
    assert question_type("Who discovered oxygen?") == "person"
    assert question_type("Which city is the capital of Peru?") == "place"
    assert question_type("What is the chemical symbol of gold?") == "code"
    assert question_type("Which element has the symbol Au?") == "entity"
    assert question_type("What is the capital of Peru?") == "entity"


def test_agreement_across_contexts_still_decides(gen) -> None:
    q = "What is the capital of Peru?"
    lying = PERU.replace("Lima", "Cusco")
    assert gen.generate(q, [lying, PERU, PERU]).text == "Lima"
    assert gen.generate(q, [lying, PERU]).text == "Cusco"  # rank breaks the tie
    share = gen.answer_score(q, [lying, PERU, PERU], "Lima")
    assert 0.5 < share < 1.0


def test_only_a_documents_first_passage_gets_the_lead_sentence_bonus(gen) -> None:
    # the clean copy states the capital in its sixth sentence; a polluted copy made longer
    # (document-level pollution appends text) is cut in two, and its second passage opens
    # with the lying sentence: it must not count as a lead sentence and outweigh the clean
    # copy (seed 2, countries/document: "Nicosia" for Albania)
    lead = (
        "Albania is a country in Southeast Europe. It is in the Balkans. It borders Greece. "
        "It has a long coast. It is a member of NATO. Tirana is the capital and largest "
        "city in the country."
    )
    cut = "(Albania) Nicosia is the capital and largest city in the country."
    assert gen.generate("What is the capital of Albania?", [lead, cut]).text == "Tirana"
