"""httpx clients for a tool server, and :class:`Toolbox`, which runs tools in-process or remotely.

Both clients use an explicit timeout and retry only on connection failures (the request never
reached the server), with exponential backoff; an HTTP error answer is never retried, nor is a
failure after the request may have reached the server (a read timeout, a dropped connection), since
a tool call need not be idempotent. A 404 raises :class:`~turngym.errors.ToolNotFound`, a 422
:class:`~turngym.errors.ToolArgumentError`, anything else (other status codes, transport failures)
:class:`~turngym.errors.ToolServerError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from turngym.errors import ToolArgumentError, ToolNotFound, ToolServerError
from turngym.http import CONNECT_ERRORS, send
from turngym.tools.spec import Tool, ToolResult


def _result_from_response(name: str, response: httpx.Response) -> ToolResult:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if response.status_code == 404:
        raise ToolNotFound(str(detail))
    if response.status_code == 422:
        raise ToolArgumentError(str(detail))
    if response.status_code != 200:
        raise ToolServerError(f"tool server answered {response.status_code} for {name!r}: {detail}")
    return ToolResult(ok=bool(body["ok"]), output=body.get("output"), error=body.get("error"))


class ToolClient:
    """Synchronous client of a tool server."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)
        self._retries = retries
        self._backoff_s = backoff_s

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return send(
            self._http, method, path, retries=self._retries, backoff_s=self._backoff_s,
            error=ToolServerError, server="tool server", **kwargs,
        )  # fmt: skip

    def list_tools(self) -> list[dict[str, Any]]:
        """The served tools' OpenAI function schemas."""
        return list(self._request("GET", "/tools").json())

    def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run tool ``name`` on the server."""
        return _result_from_response(name, self._request("POST", f"/tools/{name}", json=dict(arguments)))

    def close(self) -> None:
        self._http.close()


class AsyncToolClient:
    """Asynchronous client of a tool server (same behaviour as :class:`ToolClient`)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)
        self._retries = retries
        self._backoff_s = backoff_s

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self._retries + 1):
            try:
                return await self._http.request(method, path, **kwargs)
            except CONNECT_ERRORS as exc:
                if attempt == self._retries:
                    raise ToolServerError(
                        f"cannot reach tool server at {self._http.base_url} after {attempt + 1} tries: {exc}"
                    ) from exc
                await asyncio.sleep(self._backoff_s * 2**attempt)
            except httpx.HTTPError as exc:  # reached the server (or may have): never retried
                url = self._http.base_url
                raise ToolServerError(f"request to tool server at {url} failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def list_tools(self) -> list[dict[str, Any]]:
        """The served tools' OpenAI function schemas."""
        return list((await self._request("GET", "/tools")).json())

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run tool ``name`` on the server."""
        response = await self._request("POST", f"/tools/{name}", json=dict(arguments))
        return _result_from_response(name, response)

    async def aclose(self) -> None:
        await self._http.aclose()


class Toolbox:
    """Runs a set of tools in-process, or through a tool server when ``url`` is given."""

    def __init__(self, tools: Sequence[Tool], *, url: str | None = None, timeout_s: float = 30.0) -> None:
        self.tools = {t.name: t for t in tools}
        self._client = ToolClient(url, timeout_s=timeout_s) if url else None

    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI function schemas of the tools (for prompts)."""
        return [t.schema() for t in self.tools.values()]

    def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run a tool; unknown names and bad arguments raise, the tool's own failure is a result."""
        if self._client is not None:
            return self._client.call(name, arguments)
        tool = self.tools.get(name)
        if tool is None:
            raise ToolNotFound(f"no tool named {name!r}; available: {sorted(self.tools)}")
        return tool.call(arguments)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
