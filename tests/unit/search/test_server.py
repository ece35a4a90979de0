"""The ``/retrieve`` server: Search-R1's request/response shape and strict 4xx validation."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from turngym.envs.search.data import Passage
from turngym.envs.search.retriever import BM25Retriever, Hit, format_information
from turngym.envs.search.server import RetrieverClient, create_retriever_app
from turngym.errors import ConfigError, ToolServerError

CORPUS = [
    Passage("0", '"Velmora"\nVelmora is a company founded in 1874 by Ilsa Quorven.'),
    Passage("1", '"Ilsa Quorven"\nIlsa Quorven was born in the city of Tavrenna.'),
    Passage("2", '"Tavrenna"\nTavrenna is a city in Ostravia.'),
    Passage("3", '"Ostravia"\nOstravia is a country. Its capital is Dunmere.'),
]


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_retriever_app(BM25Retriever(CORPUS), max_topk=10, max_queries=4, max_body_bytes=8192)
    with TestClient(app) as http:
        yield http


def search_r1_style_batch_search(http: Any, url: str, queries: list[str], topk: int) -> list[str]:
    """A client written the way Search-R1's generation loop calls its retriever."""
    payload = {"queries": queries, "topk": topk, "return_scores": True}
    results = http.post(url, json=payload).json()["result"]
    rendered = []
    for result in results:
        reference = ""
        for idx, item in enumerate(result):
            content = item["document"]["contents"]
            title = content.split("\n")[0]
            text = "\n".join(content.split("\n")[1:])
            reference += f"Doc {idx + 1}(Title: {title}) {text}\n"
        rendered.append(reference)
    return rendered


def test_search_r1_client_works_unchanged(client: TestClient) -> None:
    rendered = search_r1_style_batch_search(client, "/retrieve", ["Velmora founded", "capital Ostravia"], 2)
    assert rendered[0].startswith(
        'Doc 1(Title: "Velmora") Velmora is a company founded in 1874 by Ilsa Quorven.\n'
    )
    assert rendered[1].startswith('Doc 1(Title: "Ostravia") Ostravia is a country.')
    local = BM25Retriever(CORPUS).retrieve(["Velmora founded", "capital Ostravia"], 2)
    assert rendered == [format_information(hits) for hits in local]


def test_response_shapes_with_and_without_scores(client: TestClient) -> None:
    scored = client.post("/retrieve", json={"queries": ["Tavrenna"], "topk": 1, "return_scores": True}).json()
    item = scored["result"][0][0]
    assert set(item) == {"document", "score"} and isinstance(item["score"], float) and item["score"] > 0
    assert item["document"] == {
        "id": "2",
        "title": "Tavrenna",
        "text": "Tavrenna is a city in Ostravia.",
        "contents": '"Tavrenna"\nTavrenna is a city in Ostravia.',
    }
    bare = client.post("/retrieve", json={"queries": ["Tavrenna"], "topk": 1}).json()
    assert bare == {"result": [[item["document"]]]}
    default = client.post("/retrieve", json={"queries": ["Ostravia Tavrenna Velmora Quorven"], "topk": None})
    assert len(default.json()["result"][0]) == 3  # null topk falls back to the default of 3
    assert client.post("/retrieve", json={"queries": ["zebra"]}).json() == {"result": [[]]}
    assert client.get("/health").json() == {"status": "ok", "passages": 4, "retriever": "BM25Retriever"}


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({}, "queries", "Field required"),
        ({"queries": "Velmora"}, "queries", "valid list"),
        ({"queries": [1, 2]}, "queries.0", "valid string"),
        ({"queries": []}, "queries", "at least one query"),
        ({"queries": ["ok", "  "]}, "queries.1", "non-empty query"),
        ({"queries": ["a", "b", "c", "d", "e"]}, "queries", "at most 4 queries"),
        ({"queries": ["x" * 5000]}, "queries.0", "at most 4096 characters"),
        ({"queries": ["x"], "topk": 0}, "topk", "[1, 10], got 0"),
        ({"queries": ["x"], "topk": -3}, "topk", "[1, 10], got -3"),
        ({"queries": ["x"], "topk": 10**12}, "topk", "[1, 10]"),
        ({"queries": ["x"], "topk": "3"}, "topk", "valid integer"),
        ({"queries": ["x"], "topk": 2.0}, "topk", "valid integer"),
        ({"queries": ["x"], "return_scores": 1}, "return_scores", "valid boolean"),
        ({"queries": ["x"], "top_k": 3}, "top_k", "Extra inputs"),
        ([["x"]], "<body>", "valid dictionary"),
    ],
)
def test_invalid_requests_get_422_naming_the_field(
    client: TestClient, body: object, field: str, problem: str
) -> None:
    response = client.post("/retrieve", json=body)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert any(e["field"] == field and problem in e["problem"] for e in errors), errors


def test_malformed_json_and_oversized_bodies(client: TestClient) -> None:
    bad = client.post("/retrieve", content=b'{"queries": [', headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "not valid JSON" in bad.json()["detail"]
    big = client.post("/retrieve", content=json.dumps({"queries": ["x" * 9000]}).encode())
    assert big.status_code == 413 and "8192" in big.json()["detail"]


def test_app_rejects_impossible_default_topk() -> None:
    with pytest.raises(ConfigError, match="default topk"):
        create_retriever_app(BM25Retriever(CORPUS), default_topk=20, max_topk=10)


def test_retriever_client_round_trip_and_errors(client: TestClient) -> None:
    remote = RetrieverClient("http://testserver", http=client)
    hits = remote.retrieve(["Ilsa Quorven", "zebra"], topk=2)
    local = BM25Retriever(CORPUS).retrieve(["Ilsa Quorven", "zebra"], topk=2)
    assert [[h.passage for h in row] for row in hits] == [[h.passage for h in row] for row in local]
    assert [h.score for h in hits[0]] == pytest.approx([h.score for h in local[0]])
    assert remote.retrieve([], topk=2) == []
    with pytest.raises(ToolServerError, match="HTTP 422"):
        remote.retrieve(["x"], topk=50)

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"result": [[{"document": {"id": "1"}, "score": 1.0}]]})

    bad = RetrieverClient("http://x", http=httpx.Client(transport=httpx.MockTransport(broken)))
    with pytest.raises(ToolServerError, match="malformed document"):
        bad.retrieve(["q"], topk=1)
    unreachable = RetrieverClient("http://127.0.0.1:9", timeout_s=2.0)
    with pytest.raises(ToolServerError, match="cannot reach"):
        unreachable.retrieve(["q"], topk=1)
    unreachable.close()


class _CrashingRetriever:
    """Raises on the query "explode", otherwise answers with BM25."""

    def __init__(self) -> None:
        self.inner = BM25Retriever(CORPUS)

    def retrieve(self, queries: Sequence[str], topk: int) -> list[list[Hit]]:
        if "explode" in queries:
            raise RuntimeError("retriever crashed")
        return self.inner.retrieve(queries, topk)

    def close(self) -> None:
        """Nothing to release."""


def test_a_crashing_retriever_fails_the_request_with_500_and_the_server_goes_on() -> None:
    app = create_retriever_app(_CrashingRetriever())
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.post("/retrieve", json={"queries": ["explode"]}).status_code == 500
        assert http.post("/retrieve", json={"queries": ["Velmora"]}).status_code == 200
