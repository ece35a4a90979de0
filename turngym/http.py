"""One synchronous HTTP request with the project's retry rule.

Only failures to connect (the request never reached the server) are retried, ``retries`` times
with exponential backoff ``backoff_s · 2^attempt``; any other transport failure, which may have
reached the server, is raised at once. Both are raised as ``error`` (a
:class:`~turngym.errors.TurngymError` subclass) naming the server, so callers never see a bare
httpx exception.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from turngym.errors import TurngymError

CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)


def send(
    http: httpx.Client,
    method: str,
    path: str,
    *,
    retries: int,
    backoff_s: float,
    error: type[TurngymError],
    server: str,
    **kwargs: Any,
) -> httpx.Response:
    """``http.request(method, path, **kwargs)``, retried on connection failures only."""
    for attempt in range(retries + 1):
        try:
            return http.request(method, path, **kwargs)
        except CONNECT_ERRORS as exc:
            if attempt == retries:
                raise error(
                    f"cannot reach {server} at {http.base_url} after {attempt + 1} tries: {exc}"
                ) from exc
            time.sleep(backoff_s * 2**attempt)
        except httpx.HTTPError as exc:  # reached the server (or may have): never retried
            raise error(f"request to {server} at {http.base_url} failed: {exc!r}") from exc
    raise AssertionError("unreachable")
