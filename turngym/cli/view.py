"""``turngym view RUN_DIR_OR_JSONL``: browse trajectories and their credit in a local web page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from turngym.cli.serve import Host, Port


def view(
    path: Annotated[
        Path,
        typer.Argument(
            help="A run directory (its rollouts/), a folder of JSONL files, or a .jsonl/.jsonl.gz file"
        ),
    ],
    host: Host = "127.0.0.1",
    port: Port = 8300,
) -> None:
    """Serve a page of trajectories: each turn's reward, advantage, step group, token log-probs."""
    from turngym.viewer.app import create_viewer_app, resolve_source
    from turngym.viewer.store import TrajectoryStore

    source = resolve_source(path)
    console = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    store = TrajectoryStore(source.files)
    console.print(
        f"indexed {len(store) - len(store.problems)} trajectories in {len(source.files)} file(s) in "
        f"{time.perf_counter() - started:.1f} s"
        + (f"; {len(store.problems)} malformed line(s), listed at /api/problems" if store.problems else ""),
        markup=False,
        soft_wrap=True,
    )
    console.print(f"open http://{host}:{port}/ (Ctrl-C stops)", markup=False)
    uvicorn.run(create_viewer_app(source, store), host=host, port=port, log_level="warning")
