"""Tools in-process: the Tool spec, the FastAPI app through httpx's ASGI transport, client retries."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import httpx
import pytest

from turngym.errors import ToolArgumentError, ToolNotFound, ToolServerError
from turngym.tools import AsyncToolClient, Tool, Toolbox, ToolClient, ToolResult, create_tool_app


def add(a: int, b: int = 2) -> int:
    """Add two integers.

    Longer explanation that is not part of the description.
    """
    return a + b


def shout(text: str, style: Literal["upper", "title"] = "upper") -> str:
    """Make text loud."""
    if text == "boom":
        raise RuntimeError("the tool failed")
    return text.upper() if style == "upper" else text.title()


ADD, SHOUT = Tool.from_function(add), Tool.from_function(shout)
TOOLS = [ADD, SHOUT]


# ---- the Tool spec ------------------------------------------------------------------------------
def test_schema_is_the_openai_function_format() -> None:
    assert ADD.schema() == {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "a": {"title": "A", "type": "integer"},
                    "b": {"default": 2, "title": "B", "type": "integer"},
                },
                "required": ["a"],
            },
        },
    }


def test_string_annotations_are_resolved_in_the_functions_module() -> None:
    """This module uses ``from __future__ import annotations``: ``Literal`` arrives as a string."""
    parameters = SHOUT.schema()["function"]["parameters"]
    assert parameters["properties"]["style"]["enum"] == ["upper", "title"]
    assert parameters["required"] == ["text"]


def test_call_validates_then_runs() -> None:
    assert ADD.call({"a": 40}) == ToolResult(ok=True, output=42)
    assert ADD.call({"a": "40", "b": 1}).output == 41  # pydantic's lax mode coerces numeric strings


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, r"bad arguments for tool 'add': a: Field required"),
        ({"a": "x"}, r"a: Input should be a valid integer"),
        ({"a": 1, "c": 3}, r"c: Extra inputs are not permitted"),
        ([1, 2], r"arguments of tool 'add' must be a JSON object, got list"),
    ],
)
def test_bad_arguments_name_the_field(arguments: Any, message: str) -> None:
    with pytest.raises(ToolArgumentError, match=message):
        ADD.call(arguments)


def test_a_tool_that_raises_gives_an_error_result() -> None:
    result = SHOUT.call({"text": "boom"})
    assert result == ToolResult(ok=False, error="RuntimeError: the tool failed")
    assert result.as_text() == "Error: RuntimeError: the tool failed"
    assert ToolResult(ok=True, output=[1, 2]).as_text() == "[1, 2]"


def odd_output(kind: str) -> object:
    """Return a value that may not be JSON."""
    return {"bytes": b"\xff", "set": {1}, "nan": math.nan, "nested": {"a": [1, "b", None, 2.5]}}[kind]


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("bytes", "Object of type bytes is not JSON serializable"),
        ("set", "Object of type set is not JSON serializable"),
        ("nan", "Out of range float values are not JSON compliant"),
    ],
)
def test_non_json_output_is_an_error_result_in_process_and_over_http(kind: str, problem: str) -> None:
    tool = Tool.from_function(odd_output)
    expected = f"tool 'odd_output' returned a value that is not JSON ({problem}); "
    expected += "return str, numbers, lists or dicts"
    assert tool.call({"kind": kind}) == ToolResult(ok=False, error=expected)

    async def over_http() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_tool_app([tool]))
        async with httpx.AsyncClient(transport=transport, base_url="http://tools") as client:
            return await client.post("/tools/odd_output", json={"kind": kind})

    response = asyncio.run(over_http())
    assert (response.status_code, response.json()) == (200, {"ok": False, "output": None, "error": expected})


def test_json_output_passes_unchanged() -> None:
    assert Tool.from_function(odd_output).call({"kind": "nested"}).output == {"a": [1, "b", None, 2.5]}


def test_tool_arguments_need_annotations() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]  # deliberately unannotated
        return x

    with pytest.raises(TypeError, match="tool argument 'x' of untyped needs a type annotation"):
        Tool.from_function(untyped)


def test_duplicate_tool_names_are_refused() -> None:
    with pytest.raises(ValueError, match="tool names must be unique"):
        create_tool_app([ADD, Tool.from_function(add)])


def test_toolbox_in_process() -> None:
    box = Toolbox(TOOLS)
    assert [s["function"]["name"] for s in box.schemas()] == ["add", "shout"]
    assert box.call("shout", {"text": "hi", "style": "title"}).output == "Hi"
    with pytest.raises(ToolNotFound, match=r"no tool named 'mul'; available: \['add', 'shout'\]"):
        box.call("mul", {})
    with pytest.raises(ToolArgumentError, match="style: Input should be 'upper' or 'title'"):
        box.call("shout", {"text": "hi", "style": "bold"})


# ---- the app through the ASGI transport -----------------------------------------------------------
def asgi_request(method: str, path: str, *, max_body_bytes: int = 1 << 20, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        app = create_tool_app(TOOLS, max_body_bytes=max_body_bytes)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tools") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_health_and_schemas() -> None:
    assert asgi_request("GET", "/health").json() == {"status": "ok", "tools": 2}
    assert asgi_request("GET", "/tools").json() == [ADD.schema(), SHOUT.schema()]


def test_call_ok_and_tool_failure_is_a_200_result() -> None:
    response = asgi_request("POST", "/tools/add", json={"a": 1, "b": 2})
    assert (response.status_code, response.json()) == (200, {"ok": True, "output": 3, "error": None})
    response = asgi_request("POST", "/tools/shout", json={"text": "boom"})
    assert response.status_code == 200
    assert response.json() == {"ok": False, "output": None, "error": "RuntimeError: the tool failed"}


def test_unknown_tool_is_a_json_404() -> None:
    response = asgi_request("POST", "/tools/mul", json={"a": 1})
    assert response.status_code == 404
    assert response.json() == {"detail": "no tool named 'mul'; available: ['add', 'shout']"}


def test_bad_arguments_are_a_422_naming_each_field() -> None:
    response = asgi_request("POST", "/tools/add", json={"a": "x", "z": 1})
    assert response.status_code == 422
    body = response.json()
    assert {e["field"] for e in body["errors"]} == {"a", "z"}
    assert "bad arguments for tool 'add'" in body["detail"]


def test_missing_body_counts_as_empty_arguments() -> None:
    response = asgi_request("POST", "/tools/add")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "a", "problem": "Field required"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1', "request body is not valid JSON"),
        (b"\xff\xfe\x00garbage", "request body is not valid JSON"),
        (b"[1, 2]", "arguments of tool 'add' must be a JSON object, got list"),
        (b'"just a string"', "must be a JSON object, got str"),
        (b"[" * 100_000 + b"]" * 100_000, "request body is not valid JSON"),
    ],
)
def test_malformed_bodies_are_a_json_422(content: bytes, message: str) -> None:
    headers = {"content-type": "application/json"}
    response = asgi_request("POST", "/tools/add", content=content, headers=headers)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_oversized_body_with_content_length_is_a_413() -> None:
    response = asgi_request("POST", "/tools/shout", max_body_bytes=1000, json={"text": "x" * 2000})
    assert response.status_code == 413
    assert response.json()["detail"].endswith("is over the limit of 1000")


def test_oversized_streamed_body_without_length_is_a_413() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    response = asgi_request("POST", "/tools/shout", max_body_bytes=1000, content=chunks())
    assert response.status_code == 413
    assert response.json() == {"detail": "request body is over the limit of 1000 bytes"}


def test_body_just_under_the_limit_is_accepted() -> None:
    body = json.dumps({"text": "x" * 980}).encode()
    assert len(body) <= 1000
    response = asgi_request("POST", "/tools/shout", max_body_bytes=1000, content=body)
    assert response.json()["output"] == "X" * 980


# ---- the clients, in-process ----------------------------------------------------------------------
def test_async_client_through_asgi() -> None:
    async def go() -> None:
        transport = httpx.ASGITransport(app=create_tool_app(TOOLS))
        client = AsyncToolClient("http://tools", transport=transport)
        assert [t["function"]["name"] for t in await client.list_tools()] == ["add", "shout"]
        assert (await client.call("add", {"a": 5})).output == 7
        assert (await client.call("shout", {"text": "boom"})).ok is False
        with pytest.raises(ToolNotFound, match="no tool named 'nope'"):
            await client.call("nope", {})
        with pytest.raises(ToolArgumentError, match="a: Field required"):
            await client.call("add", {})
        await client.aclose()

    asyncio.run(go())


Answer = Callable[[httpx.Request], httpx.Response]


def counting_transport(answer: Answer) -> tuple[httpx.MockTransport, list[int]]:
    attempts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        return answer(request)

    return httpx.MockTransport(handler), attempts


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def time_out_reading(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


def test_sync_client_retries_connection_errors_only_up_to_the_limit() -> None:
    transport, attempts = counting_transport(refuse)
    client = ToolClient("http://tools", retries=3, backoff_s=0.0, transport=transport)
    with pytest.raises(ToolServerError, match="cannot reach tool server at http://tools after 4 tries"):
        client.call("add", {"a": 1})
    assert len(attempts) == 4


def test_sync_client_succeeds_after_transient_connection_errors() -> None:
    def flaky(request: httpx.Request) -> httpx.Response:
        if len(attempts) < 3:
            return refuse(request)
        return httpx.Response(200, json={"ok": True, "output": 3, "error": None})

    transport, attempts = counting_transport(flaky)
    client = ToolClient("http://tools", retries=3, backoff_s=0.0, transport=transport)
    assert client.call("add", {}).output == 3
    assert len(attempts) == 3


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (lambda r: httpx.Response(503, json={"detail": "busy"}), ToolServerError, "answered 503 for 'add'"),
        (lambda r: httpx.Response(500, text="<html>oops</html>"), ToolServerError, "answered 500"),
        (lambda r: httpx.Response(404, json={"detail": "gone"}), ToolNotFound, "gone"),
        (lambda r: httpx.Response(422, json={"detail": "bad a"}), ToolArgumentError, "bad a"),
        (time_out_reading, ToolServerError, "request to tool server at http://tools failed: ReadTimeout"),
    ],
)
def test_sync_client_never_retries_answers_or_read_failures(
    answer: Answer, error: type[Exception], message: str
) -> None:
    transport, attempts = counting_transport(answer)
    with pytest.raises(error, match=message):
        ToolClient("http://tools", retries=3, backoff_s=0.0, transport=transport).call("add", {})
    assert len(attempts) == 1


def test_async_client_retry_counts_match_the_sync_client() -> None:
    async def go() -> tuple[int, int]:
        refusing, refused = counting_transport(refuse)
        client = AsyncToolClient("http://tools", retries=2, backoff_s=0.0, transport=refusing)
        with pytest.raises(ToolServerError, match="after 3 tries"):
            await client.call("add", {})
        slow, timed_out = counting_transport(time_out_reading)
        client = AsyncToolClient("http://tools", retries=2, backoff_s=0.0, transport=slow)
        with pytest.raises(ToolServerError, match="ReadTimeout"):
            await client.call("add", {})
        return len(refused), len(timed_out)

    assert asyncio.run(go()) == (3, 1)


def test_client_sends_the_arguments_as_the_json_body() -> None:
    seen: list[tuple[str, str, Any]] = []

    def echo(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"ok": True, "output": "fine", "error": None})

    client = ToolClient("http://tools/", transport=httpx.MockTransport(echo), timeout_s=5.0)
    assert client.call("shout", {"text": "ünï"}).output == "fine"
    assert seen == [("POST", "/tools/shout", {"text": "ünï"})]
