"""``turngym serve ...``: run turngym's FastAPI servers with uvicorn."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
import uvicorn

from turngym.cli.envs import OptionList, make_env, parse_options
from turngym.envs.server import create_env_app
from turngym.errors import ConfigError
from turngym.tools import Tool, create_tool_app

BUILTIN_TOOLS = {"calculator": "turngym.envs.toy.calculator:CALCULATOR"}

Host = Annotated[str, typer.Option(help="Interface to bind (127.0.0.1 keeps it local)")]
Port = Annotated[int, typer.Option(min=1, max=65535)]


def load_tools(target: str) -> list[Tool]:
    """A built-in tool name, or ``package.module:ATTR`` naming a Tool or a list of Tools."""
    path = BUILTIN_TOOLS.get(target, target)
    module_name, sep, attr = path.partition(":")
    if not sep:
        raise ConfigError(
            f"unknown tool {target!r}: give a built-in name ({', '.join(BUILTIN_TOOLS)}) or module:ATTR"
        )
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load tools from {path!r}: {exc}") from exc
    tools = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(t, Tool) for t in tools):
        raise ConfigError(f"{path!r} is not a turngym Tool or a list of Tools")
    return list(tools)


def serve_tools(
    tools: Annotated[list[str], typer.Argument(help="Built-in tool names or module:ATTR specs")],
    host: Host = "127.0.0.1",
    port: Port = 8100,
) -> None:
    """Serve tools: GET /tools, POST /tools/{name}, GET /health."""
    loaded = [t for target in tools for t in load_tools(target)]
    uvicorn.run(create_tool_app(loaded), host=host, port=port, log_level="info")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_bind(host: str, tokens: list[str], insecure: bool) -> None:
    """Binding beyond loopback needs a token, or the explicit opt-out (which is announced loudly)."""
    if host in LOOPBACK or tokens:
        return
    if not insecure:
        raise ConfigError(
            f"binding {host} exposes the server beyond this machine: give --token (or set "
            "TURNGYM_ENV_TOKEN), or pass --insecure-no-token to serve without authentication"
        )
    typer.echo(
        f"WARNING: serving on {host} WITHOUT AUTHENTICATION: anyone who can reach this port can "
        "create sessions and use every session",
        err=True,
    )


def serve_env(
    env_id: Annotated[str, typer.Argument(help="Registered id, e.g. turngym/Maze-v0")],
    option: OptionList = None,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    max_sessions: Annotated[int, typer.Option(min=1, help="Open sessions before answering 429")] = 64,
    max_inflight: Annotated[int, typer.Option(min=1, help="Env calls at once before answering 503")] = 256,
    session_ttl: Annotated[
        float, typer.Option(min=0.001, help="Seconds idle before a session is reaped")
    ] = 600.0,
    request_timeout: Annotated[
        float, typer.Option(min=0.001, help="Deadline of one call in seconds (clients may ask for less)")
    ] = 60.0,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body or message")] = 1 << 20,
    token: Annotated[
        list[str] | None,
        typer.Option(envvar="TURNGYM_ENV_TOKEN", help="Bearer token clients must send (repeatable)"),
    ] = None,
    insecure_no_token: Annotated[
        bool, typer.Option("--insecure-no-token", help="Allow a non-loopback bind without a token")
    ] = False,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (slow)")] = False,
    html: Annotated[bool, typer.Option("--html", help="Also serve a browser view at /ui/")] = False,
) -> None:
    """Serve an environment: POST /sessions, /sessions/{id}/reset|step, WS /sessions/{id}/ws."""
    tokens = [t for t in token or [] if t]
    check_bind(host, tokens, insecure_no_token)
    kwargs = parse_options(option)
    app = create_env_app(
        env_id,
        lambda: make_env(env_id, kwargs),
        max_sessions=max_sessions,
        max_inflight=max_inflight,
        session_ttl_s=session_ttl,
        request_timeout_s=request_timeout,
        max_body_bytes=max_body_bytes,
        tokens=tokens,
        html=html,
    )
    if html:
        typer.echo(f"browser view: http://{host}:{port}/ui/", err=True)
    uvicorn.run(
        app, host=host, port=port, log_level="info", access_log=access_log, ws_max_size=4 * max_body_bytes
    )
