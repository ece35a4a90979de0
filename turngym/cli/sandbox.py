"""``turngym serve sandbox``: the SandboxFusion-compatible sandbox server (local or docker backend)."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from turngym.errors import ConfigError
from turngym.sandboxes.api import Sandbox
from turngym.sandboxes.local import LocalConfig, LocalSandbox
from turngym.sandboxes.server import create_sandbox_app


def build_sandbox(backend: str, isolation: str, pool_size: int, image: str) -> Sandbox:
    """The backend named on the command line."""
    if backend == "local":
        if isolation not in ("auto", "bwrap", "process"):
            raise ConfigError(f"--isolation must be auto, bwrap or process, got {isolation!r}")
        # `isolation` is a plain CLI string, checked against the Literal's values just above
        return LocalSandbox(LocalConfig(isolation=isolation), pool_size=pool_size)  # type: ignore[arg-type]
    if backend == "docker":
        from turngym.sandboxes.docker import DockerConfig, DockerSandbox

        return DockerSandbox(DockerConfig(image=image), pool_size=pool_size)
    raise ConfigError(f"--backend must be local or docker, got {backend!r}")


def serve_sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind (127.0.0.1 keeps it local)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    backend: Annotated[str, typer.Option(help="local (jailed processes) or docker")] = "local",
    isolation: Annotated[str, typer.Option(help="local backend: auto, bwrap or process")] = "auto",
    pool_size: Annotated[int, typer.Option(min=0, help="pre-started workers or containers")] = 4,
    max_concurrency: Annotated[int, typer.Option(min=1, help="runs in flight before 429")] = 4,
    max_memory_mb: Annotated[int, typer.Option(min=16, help="ceiling for memory_limit_MB")] = 1024,
    max_body_mb: Annotated[int, typer.Option(min=1, help="largest request body")] = 8,
    image: Annotated[str, typer.Option(help="docker backend: image")] = "turngym-sandbox:bookworm",
) -> None:
    """Serve POST /run_code (SandboxFusion-compatible), POST /run_code/batch and GET /health."""
    sandbox = build_sandbox(backend, isolation, pool_size, image)
    try:
        typer.echo(f"sandbox: {sandbox.status()}", err=True)
        app = create_sandbox_app(
            sandbox,
            max_concurrency=max_concurrency,
            max_memory_mb=max_memory_mb,
            max_body_bytes=max_body_mb << 20,
        )
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        sandbox.close()
