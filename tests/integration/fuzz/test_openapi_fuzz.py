"""Property-based fuzzing of every HTTP server's OpenAPI schema with schemathesis: for generated
requests (valid and invalid bodies, path parameters, headers) no server answers 5xx, every status
is one its schema documents, and every documented response body matches its schema.

The servers run in-process (ASGI); the sandbox server gets a stand-in backend that answers at once,
since this checks the HTTP layer, not code execution. Bounded: ``MAX_EXAMPLES`` per operation.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import turngym
from tests.unit.test_server_abuse import InstantSandbox
from turngym.envs.search.kb import generate_kb
from turngym.envs.search.retriever import BM25Retriever
from turngym.envs.search.server import create_retriever_app
from turngym.envs.server import create_env_app
from turngym.envs.toy.calculator import CALCULATOR
from turngym.sandboxes.server import create_sandbox_app
from turngym.tools import create_tool_app

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
APPS: dict[str, FastAPI] = {
    "env": create_env_app("turngym/Maze-v0", lambda: turngym.make("turngym/Maze-v0"), max_sessions=8),
    "tool": create_tool_app([CALCULATOR]),
    "retriever": create_retriever_app(BM25Retriever(generate_kb().passages[:50])),
    "sandbox": create_sandbox_app(InstantSandbox()),
}


def _schema(name: str) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", APPS[name])


env_schema, tool_schema, retriever_schema, sandbox_schema = (_schema(n) for n in APPS)
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@env_schema.parametrize()
@FUZZ
def test_env_server_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@tool_schema.parametrize()
@FUZZ
def test_tool_server_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@retriever_schema.parametrize()
@FUZZ
def test_retriever_server_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@sandbox_schema.parametrize()
@FUZZ
def test_sandbox_server_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
