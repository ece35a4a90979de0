"""The Search-R1-compatible retriever server and its httpx client.

``POST /retrieve`` takes ``{"queries": [str, ...], "topk": int | null, "return_scores": bool}``
(research note §3.2) and answers ``{"result": [[item, ...] per query]}``, where an item is
``{"document": {"id", "title", "text", "contents"}, "score": float}`` when ``return_scores`` is
true and the bare document otherwise — the shape Search-R1's ``retrieval_server.py`` returns, so
its clients work unchanged. A null or absent ``topk`` falls back to the server's default (3).
``GET /health`` reports the corpus size.

Strict validation, every error a JSON body ``{"detail": ..., "errors": [{"field", "problem"}]}``:
unknown fields, wrong types (``"3"`` is not an int, ``1`` is not a bool), an empty query list, an
empty or over-long query, more than ``max_queries`` queries, ``topk < 1`` or over ``max_topk``
are 422; a body that is not JSON is 422; a body over ``max_body_bytes`` is 413.

:class:`RetrieverClient` calls such a server (ours or Search-R1's) and implements the
:class:`~turngym.envs.search.retriever.Retriever` protocol, so the env uses it in place of an
in-process retriever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pydantic
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from turngym.envs.search.data import passage_from_row
from turngym.envs.search.retriever import Hit, Retriever
from turngym.errors import ConfigError, ToolServerError
from turngym.tools.server import documented, error_response, read_json_body
from turngym.tools.spec import describe_validation_error

DEFAULT_TOPK = 3
MAX_TOPK = 100
MAX_QUERIES = 512
MAX_QUERY_CHARS = 4096
MAX_BODY_BYTES = 1 << 20


class RetrieveRequest(pydantic.BaseModel):
    """The body of ``POST /retrieve``."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    queries: list[str]
    topk: int | None = None
    return_scores: bool = False


def _limit_errors(
    request: RetrieveRequest, max_topk: int, max_queries: int, max_query_chars: int
) -> list[dict[str, str]]:
    errors = []
    if not request.queries:
        errors.append({"field": "queries", "problem": "expected at least one query, got an empty list"})
    if len(request.queries) > max_queries:
        errors.append(
            {
                "field": "queries",
                "problem": f"expected at most {max_queries} queries, got {len(request.queries)}",
            }
        )
    for i, query in enumerate(request.queries):
        if not query.strip():
            errors.append({"field": f"queries.{i}", "problem": "expected a non-empty query, got blank text"})
        elif len(query) > max_query_chars:
            errors.append(
                {
                    "field": f"queries.{i}",
                    "problem": f"expected at most {max_query_chars} characters, got {len(query)}",
                }
            )
    if request.topk is not None and not 1 <= request.topk <= max_topk:
        errors.append(
            {"field": "topk", "problem": f"expected an integer in [1, {max_topk}], got {request.topk}"}
        )
    return errors


def create_retriever_app(
    retriever: Retriever,
    *,
    default_topk: int = DEFAULT_TOPK,
    max_topk: int = MAX_TOPK,
    max_queries: int = MAX_QUERIES,
    max_query_chars: int = MAX_QUERY_CHARS,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """A FastAPI app serving ``retriever`` at ``POST /retrieve`` (see the module docstring)."""
    if not 1 <= default_topk <= max_topk:
        raise ConfigError(f"default topk must lie in [1, max_topk={max_topk}], got {default_topk}")
    app = FastAPI(title="turngym retriever")
    corpus_size = len(getattr(retriever, "passages", ()))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "passages": corpus_size, "retriever": type(retriever).__name__}

    @app.post("/retrieve", **documented(413, 422, body=RetrieveRequest))
    async def retrieve(request: Request) -> Any:
        payload = await read_json_body(request, max_body_bytes)
        if isinstance(payload, JSONResponse):
            return payload
        try:
            body = RetrieveRequest.model_validate(payload)
        except pydantic.ValidationError as exc:
            return error_response(422, "invalid /retrieve request", errors=describe_validation_error(exc))
        errors = _limit_errors(body, max_topk, max_queries, max_query_chars)
        if errors:
            return error_response(422, "invalid /retrieve request", errors=errors)
        topk = body.topk if body.topk is not None else default_topk
        results = await run_in_threadpool(retriever.retrieve, body.queries, topk)
        if body.return_scores:
            return {
                "result": [
                    [{"document": hit.passage.document(), "score": hit.score} for hit in hits]
                    for hits in results
                ]
            }
        return {"result": [[hit.passage.document() for hit in hits] for hits in results]}

    return app


def _hits_from_response(data: Any, expected: int) -> list[list[Hit]]:
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list) or len(result) != expected:
        raise ToolServerError(
            f"retriever answered without a 'result' list of {expected} entries: {str(data)[:200]}"
        )
    hits: list[list[Hit]] = []
    for items in result:
        row = []
        for item in items:
            has_score = isinstance(item, dict) and "document" in item
            document = item["document"] if has_score else item
            try:
                passage = passage_from_row(document, where="retriever result")
            except ConfigError as exc:
                raise ToolServerError(f"retriever returned a malformed document: {exc}") from exc
            row.append(Hit(passage, float(item.get("score", 0.0)) if has_score else 0.0))
        hits.append(row)
    return hits


class RetrieverClient:
    """An httpx client of a ``/retrieve`` server; implements the ``Retriever`` protocol."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, http: httpx.Client | None = None) -> None:
        """``http`` replaces the default client (e.g. FastAPI's ``TestClient`` for in-process tests)."""
        self.url = url.rstrip("/")
        self._http = http if http is not None else httpx.Client(base_url=self.url, timeout=timeout_s)

    def retrieve(self, queries: Sequence[str], topk: int) -> list[list[Hit]]:
        if not queries:
            return []
        body = {"queries": list(queries), "topk": topk, "return_scores": True}
        try:
            response = self._http.post(f"{self.url}/retrieve", json=body)
        except httpx.HTTPError as exc:
            raise ToolServerError(f"cannot reach the retriever at {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise ToolServerError(
                f"retriever at {self.url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise ToolServerError(f"retriever at {self.url} answered with invalid JSON: {exc}") from exc
        return _hits_from_response(data, len(queries))

    def close(self) -> None:
        self._http.close()
