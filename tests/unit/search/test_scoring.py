"""Answer normalisation, EM, F1, answer extraction and the format-aware score on hand-worked cases."""

from __future__ import annotations

import pytest

from turngym.envs.search.scoring import (
    exact_match,
    extract_answer,
    f1_score,
    format_score,
    is_valid_format,
    normalize_answer,
    sub_exact_match,
    tool_productivity,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Beatles", "beatles"),
        ("  a   Tale of  Two Cities. ", "tale of two cities"),
        ("theatre", "theatre"),  # an article inside a word stays
        ("Anne's  ANNUAL", "annes annual"),
        ("U.S.A.", "usa"),
        ("Ｔｏｋｙｏ", "tokyo"),  # full-width letters fold under NFKC
        ("ﬁnal", "final"),  # the fi ligature folds too
        ("Zürich", "zürich"),  # accents are kept
        ("«Paris»", "«paris»"),  # non-ASCII punctuation is not stripped (SQuAD strips ASCII only)
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("prediction", "golden", "expected"),
    [
        ("the Eiffel Tower", ["Eiffel Tower"], 1.0),
        ("Eiffel Tower!", "eiffel tower", 1.0),
        ("An apple", ["apple"], 1.0),
        ("Eiffel", ["Eiffel Tower"], 0.0),
        ("Eiffel Tower in Paris", ["Eiffel Tower"], 0.0),
        ("NYC", ["New York City", "NYC", "New York"], 1.0),  # any golden answer counts
        ("new york", ["New York City", "NYC", "New York"], 1.0),
        ("Ｂｅｉｊｉｎｇ", ["Beijing"], 1.0),
        ("Zurich", ["Zürich"], 0.0),
        ("", ["the"], 1.0),  # both normalise to the empty string
        (None, ["Beijing"], 0.0),
    ],
)
def test_exact_match(prediction: str | None, golden: str | list[str], expected: float) -> None:
    assert exact_match(prediction, golden) == expected


def test_sub_exact_match_needs_golden_inside_prediction() -> None:
    assert sub_exact_match("It was built in Paris, France.", ["paris"]) == 1.0
    assert sub_exact_match("Par", ["Paris"]) == 0.0
    assert sub_exact_match("anything", ["the"]) == 0.0  # an empty normalised golden never matches


def test_f1_hand_computed() -> None:
    # {river, oslen, delta} vs {oslen, river}: precision 2/3, recall 1 -> F1 = 0.8
    assert f1_score("the river Oslen delta", "Oslen River") == pytest.approx(0.8)
    # best over golden answers: "york" vs {new, york}: p=1, r=1/2 -> 2/3; vs {york}: 1.0
    assert f1_score("York", ["New York", "York"]) == pytest.approx(1.0)
    assert f1_score("York", ["New York"]) == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: {x y y} vs {y}: common 1, p=1/3, r=1 -> 0.5
    assert f1_score("x y y", "y") == pytest.approx(0.5)
    assert f1_score("Paris", ["London"]) == 0.0
    assert f1_score("the", ["a"]) == 1.0  # both empty after normalisation
    assert f1_score("the", ["Paris"]) == 0.0
    assert f1_score(None, ["Paris"]) == 0.0


def test_extract_answer_takes_last_answer_of_the_response_only() -> None:
    assert extract_answer("<answer> first </answer> then <answer>\n second \n</answer>") == "second"
    assert extract_answer("no answer here") is None
    assert extract_answer("<answer>unclosed") is None
    # the prompt's example answer is not part of the response, so it can never be scored
    assert extract_answer("<think>hmm</think>") is None


VALID = (
    "<think>need facts</think>\n<search> q </search>\n\n<information>Doc 1(Title: x) y</information>\n\n"
    "<think>got it</think>\n<answer> Paris </answer>"
)


@pytest.mark.parametrize(
    ("response", "valid"),
    [
        (VALID, True),
        ("<think>easy</think><answer>Paris</answer>", True),
        ("<answer>Paris</answer>", False),  # must think first
        ("<think>a</think> stray text <answer>Paris</answer>", False),
        ("<think>a</think><search>q</search><think>b</think><answer>x</answer>", False),  # no information
        ("<think>a</think><answer>x</answer><think>b</think>", False),  # nothing after the answer
        ("<think>a<think>b</think></think><answer>x</answer>", False),  # nested
        ("<think>a</think><answer>x", False),  # unclosed
        ("<think>a</think><answer>x</answer> trailing", False),
        ("", False),
    ],
)
def test_is_valid_format(response: str, valid: bool) -> None:
    assert is_valid_format(response) is valid


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (VALID, 1.0),
        ("<answer>Paris</answer>", 0.8),  # correct, malformed
        (VALID.replace("Paris", "Rome"), 0.2),  # wrong, well-formed
        ("<think>x</think>\n<answer>Rome</answer> junk", 0.1),  # wrong, malformed
        ("I do not know", 0.0),  # no answer, malformed
    ],
)
def test_format_score_levels(response: str, expected: float) -> None:
    assert format_score(response, ["Paris"]) == pytest.approx(expected)


def test_format_score_retrieval_bonus_when_information_held_the_answer() -> None:
    wrong = VALID.replace("Doc 1(Title: x) y", "Doc 1(Title: France) Paris is its capital").replace(
        "<answer> Paris </answer>", "<answer> Lyon </answer>"
    )
    assert format_score(wrong, ["Paris"], retrieval_bonus=0.1) == pytest.approx(0.3)
    assert format_score(VALID.replace("Paris", "Lyon"), ["Paris"], retrieval_bonus=0.1) == pytest.approx(0.2)


def test_tool_productivity_is_correct_answers_per_call() -> None:
    assert tool_productivity([1, 0, 1], [2, 4, 2]) == pytest.approx(0.25)
    assert tool_productivity([1, 1], [0, 0]) == pytest.approx(2.0)  # denominator floored at 1
    with pytest.raises(ValueError, match="as many"):
        tool_productivity([1.0], [1.0, 2.0])
