"""BM25 and dense retrievers: ranking on a hand-made corpus, rendering, save/load and fingerprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from turngym.envs.search.data import Passage, write_corpus
from turngym.envs.search.retriever import (
    BM25Retriever,
    DenseRetriever,
    Hit,
    format_information,
    open_retriever,
)
from turngym.errors import ConfigError

CORPUS = [
    Passage("0", '"Velmora"\nVelmora is a company founded in 1874 by Ilsa Quorven.'),
    Passage("1", '"Ilsa Quorven"\nIlsa Quorven was born in the city of Tavrenna.'),
    Passage("2", '"Tavrenna"\nTavrenna is a city in Ostravia on the north river.'),
    Passage("3", '"Ostravia"\nOstravia is a country. Its capital is Dunmere.'),
]


def test_format_information_golden_text() -> None:
    hits = [Hit(CORPUS[0], 2.0), Hit(Passage("9", '"Two"\nline one\nline two'), 1.0)]
    assert format_information(hits) == (
        'Doc 1(Title: "Velmora") Velmora is a company founded in 1874 by Ilsa Quorven.\n'
        'Doc 2(Title: "Two") line one\nline two\n'
    )
    assert format_information([]) == ""


def test_bm25_ranks_the_matching_passage_first_and_batches() -> None:
    retriever = BM25Retriever(CORPUS)
    results = retriever.retrieve(["Ilsa Quorven born", "capital of Ostravia", "Tavrenna"], topk=2)
    assert [[h.passage.id for h in hits] for hits in results] == [["1", "0"], ["3", "2"], ["2", "1"]]
    assert all(hits[0].score > hits[1].score > 0 for hits in results)
    # the same query alone gives the same scores as in a batch
    alone = retriever.retrieve(["capital of Ostravia"], topk=2)[0]
    assert [h.score for h in alone] == pytest.approx([h.score for h in results[1]])


def test_bm25_no_shared_term_and_stopword_queries_return_nothing() -> None:
    retriever = BM25Retriever(CORPUS)
    assert retriever.retrieve(["zebra xylophone", "the of and"], topk=3) == [[], []]
    assert retriever.retrieve([], topk=3) == []
    assert len(retriever.retrieve(["Ostravia"], topk=50)[0]) == 2  # topk over the corpus size is fine


@pytest.mark.parametrize("topk", [0, -1, True, 2.5])
def test_topk_must_be_a_positive_int(topk: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        BM25Retriever(CORPUS).retrieve(["x"], topk=topk)  # type: ignore[arg-type]  # deliberately wrong


def test_bm25_empty_corpus_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty corpus"):
        BM25Retriever([])


def test_bm25_save_load_round_trip_and_fingerprint(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, CORPUS)
    built = open_retriever(corpus, tmp_path / "index")
    loaded = open_retriever(corpus, tmp_path / "index")  # second call loads the saved index
    query = ["Velmora founded"]
    before, after = built.retrieve(query, 3)[0], loaded.retrieve(query, 3)[0]
    assert [h.passage for h in after] == [h.passage for h in before] == [CORPUS[0]]
    assert [h.score for h in after] == pytest.approx([h.score for h in before])
    write_corpus(corpus, CORPUS[:3])
    with pytest.raises(ConfigError, match="built for another corpus"):
        open_retriever(corpus, tmp_path / "index")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        open_retriever(corpus, tmp_path / "file")


def test_dense_retriever_with_a_tiny_local_encoder(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    passages = [
        Passage("a", '"Velmora"\nvelmora company founded'),
        Passage("b", '"Ostravia"\nostravia capital city'),
        Passage("c", '"Paris"\nparis river north'),
    ]
    dense = DenseRetriever(tiny_encoder_dir, passages, query_prefix="", passage_prefix="")
    assert dense.embeddings.shape == (3, 32)
    assert np.allclose(np.linalg.norm(dense.embeddings, axis=1), 1.0, atol=1e-5)
    # a query identical to a passage embeds identically: cosine 1, ranked first
    hits = dense.retrieve([p.contents for p in passages], topk=3)
    assert [h[0].passage.id for h in hits] == ["a", "b", "c"]
    assert [h[0].score for h in hits] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert all(len(h) == 3 and h[0].score >= h[1].score >= h[2].score for h in hits)
    dense.save(tmp_path / "dense")
    again = DenseRetriever.load(tmp_path / "dense", passages, tiny_encoder_dir)
    assert np.array_equal(again.embeddings, dense.embeddings)
    with pytest.raises(ConfigError, match="not 'bm25'"):
        BM25Retriever.load(tmp_path / "dense", passages)
    with pytest.raises(ConfigError, match=r"no config\.json"):
        DenseRetriever(tmp_path, passages)
