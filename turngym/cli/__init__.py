"""The ``turngym`` command.

Each command lives in a module of this package; this file builds the Typer app and turns every
:class:`~turngym.errors.TurngymError` (and bad-option ``ValueError`` from env constructors) into a
one-line ``error: ...`` message with exit code 2 instead of a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from turngym.cli import envs as envs_cmds
from turngym.cli import eval as eval_cmds
from turngym.cli import kernel as kernel_cmds
from turngym.cli import retriever as retriever_cmds
from turngym.cli import sandbox as sandbox_cmds
from turngym.cli import serve as serve_cmds
from turngym.cli import template as template_cmds
from turngym.cli import train as train_cmds
from turngym.cli import view as view_cmds
from turngym.errors import TurngymError

app = typer.Typer(
    name="turngym",
    help="Multi-turn, tool-using text environments and an RL trainer for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve_app = typer.Typer(help="Serve tools, environments and sandboxes over HTTP.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")

app.command("envs")(envs_cmds.envs)
app.command("check")(envs_cmds.check)
app.command("play")(envs_cmds.play)
app.command("eval")(eval_cmds.evaluate)
app.command("train")(train_cmds.train)
app.command("sft")(train_cmds.sft)
app.command("view")(view_cmds.view)
app.command("template-check")(template_cmds.template_check)
serve_app.command("tools")(serve_cmds.serve_tools)
serve_app.command("retriever")(retriever_cmds.serve_retriever)
serve_app.command("env")(serve_cmds.serve_env)
serve_app.command("sandbox")(sandbox_cmds.serve_sandbox)
serve_app.command("kernels")(kernel_cmds.serve_kernels)
app.add_typer(kernel_cmds.kernel_app, name="kernel")


TRAIN_STACK = frozenset({"torch", "transformers", "tokenizers", "safetensors", "tensorboard"})
TRAIN_INSTALL = (
    'pip install -e ".[train]" in the turngym checkout (for the smaller CPU-only torch, first: '
    "pip install torch --index-url https://download.pytorch.org/whl/cpu)"
)


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except TurngymError as exc:
        _fail(str(exc))
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_STACK:
            raise
        _fail(f"this command needs the training stack ({exc.name} is not installed): {TRAIN_INSTALL}")
