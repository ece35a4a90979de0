"""Corpus and QA loaders on small files written by the tests (JSONL and Parquet)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from turngym.envs.search.data import Passage, load_corpus, load_qa, write_corpus
from turngym.envs.search.env import render_prompt
from turngym.errors import ConfigError


def _write_lines(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_passage_title_and_text_follow_search_r1_contents() -> None:
    p = Passage("7", '"Ostravia"\nOstravia is a country.\nSecond line.')
    assert p.title == "Ostravia"
    assert p.text == "Ostravia is a country.\nSecond line."
    assert p.document() == {"id": "7", "title": "Ostravia", "text": p.text, "contents": p.contents}
    assert Passage.from_title_text("1", "T", "body").contents == '"T"\nbody'
    assert Passage("2", "no newline").text == ""


def test_load_corpus_reads_wiki_style_and_title_text_rows(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "corpus.jsonl",
        [
            {"id": "0", "contents": '"Aaron"\nAaron is a prophet.'},
            {"id": 1, "title": "Beta", "text": "Beta is a letter."},
        ],
    )
    path.write_text(path.read_text() + "\n", encoding="utf-8")  # blank lines are skipped
    passages = load_corpus(path)
    assert [p.id for p in passages] == ["0", "1"]
    assert passages[1].contents == '"Beta"\nBeta is a letter.'
    out = tmp_path / "copy.jsonl"
    write_corpus(out, passages)
    assert load_corpus(out) == passages


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (['{"id": "0", "contents": "x"', None], "row 1: not valid JSON"),
        ([{"contents": "x"}], "'id'"),
        ([{"id": True, "contents": "x"}], "'id'"),
        ([{"id": "0", "text": "only text"}], "'contents'"),
        ([[1, 2]], "expected a JSON object"),
        ([{"id": "0", "contents": "a"}, {"id": "0", "contents": "b"}], "duplicate passage id '0'"),
        ([], "holds no passages"),
    ],
)
def test_load_corpus_rejects_malformed_rows(tmp_path: Path, rows: list[object], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows if r is not None),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=message):
        load_corpus(path)


def test_load_corpus_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_corpus(tmp_path / "nope.jsonl")


def test_load_qa_flashrag_jsonl(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "test.jsonl",
        [
            {
                "id": "test_0",
                "question": "who wrote hamlet",
                "golden_answers": ["Shakespeare", "W. Shakespeare"],
            },
            {"id": "test_1", "question": "capital of france?", "golden_answers": "Paris", "metadata": {}},
        ],
    )
    examples = load_qa(path)
    assert examples[0].id == "test_0"
    assert examples[0].golden_answers == ("Shakespeare", "W. Shakespeare")
    assert examples[1].golden_answers == ("Paris",)
    assert render_prompt(examples[0].question).endswith("Question: who wrote hamlet?\n")
    assert render_prompt(examples[1].question).endswith("Question: capital of france?\n")


def test_load_qa_json_array(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_text(
        json.dumps(
            [{"question": "q one", "golden_answers": ["a"]}, {"question": "q two", "golden_answers": ["b"]}],
            indent=2,
        )
    )
    examples = load_qa(path)
    assert [(e.id, e.question, e.golden_answers) for e in examples] == [
        ("0", "q one", ("a",)),
        ("1", "q two", ("b",)),
    ]
    path.write_text("[{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_qa(path)


def test_load_qa_search_r1_parquet(tmp_path: Path) -> None:
    prompt = render_prompt("who founded Velmora")
    rows = [
        {  # a row as Search-R1's preprocessing writes it when the source had no question column
            "id": None,
            "question": None,
            "golden_answers": None,
            "data_source": "nq",
            "prompt": [{"role": "user", "content": prompt}],
            "ability": "fact-reasoning",
            "reward_model": {"style": "rule", "ground_truth": {"target": ["Ilsa Quorven"]}},
            "extra_info": {"split": "test", "index": 5},
        },
        {
            "id": "q9",
            "question": "when was Velmora founded",
            "golden_answers": ["1874"],
            "data_source": "hotpotqa",
            "prompt": [{"role": "user", "content": "ignored"}],
            "reward_model": {"style": "rule", "ground_truth": {"target": ["1874"]}},
            "extra_info": {"split": "test", "index": 6},
        },
    ]
    path = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    first, second = load_qa(path)
    assert (first.id, first.question, first.golden_answers, first.data_source) == (
        "5",
        "who founded Velmora?",
        ("Ilsa Quorven",),
        "nq",
    )
    assert (second.id, second.question, second.golden_answers) == (
        "q9",
        "when was Velmora founded",
        ("1874",),
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q"}, "golden_answers"),
        ({"question": "q", "golden_answers": []}, "golden_answers"),
        ({"question": "q", "golden_answers": [1]}, "golden_answers"),
        ({"question": "   ", "golden_answers": ["a"]}, "non-empty 'question'"),
        ({"golden_answers": ["a"]}, "non-empty 'question'"),
    ],
)
def test_load_qa_rejects_bad_rows(tmp_path: Path, row: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_qa(_write_lines(tmp_path / "qa.jsonl", [row]))


def test_load_qa_rejects_unknown_suffix_and_corrupt_parquet(tmp_path: Path) -> None:
    csv = tmp_path / "qa.csv"
    csv.write_text("question,answer\n")
    with pytest.raises(ConfigError, match=r"\.jsonl, \.json"):
        load_qa(csv)
    broken = tmp_path / "qa.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match="not a readable Parquet file"):
        load_qa(broken)
