"""``turngym template-check MODEL_DIR``: how the agent loop's sequence differs from the chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from turngym.cli.envs import parse_options
from turngym.errors import ConfigError


def load_tokenizer(model_dir: str) -> Any:
    """The tokenizer of a model directory (``tiny``: the tiny model's), or a one-line ConfigError."""
    from transformers import AutoTokenizer
    from transformers.utils import logging

    from turngym.agents.tiny import ensure_tiny

    path = ensure_tiny() if model_dir in ("tiny", "hf:tiny") else Path(model_dir.removeprefix("hf:"))
    if not path.is_dir():
        raise ConfigError(
            f"{model_dir} is not a directory; give a model directory written by save_pretrained"
        )
    if not (path / "tokenizer_config.json").is_file():
        raise ConfigError(
            f"{path} has no tokenizer_config.json; give a model directory written by save_pretrained"
        )
    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the tokenizer in {path}: {str(exc).splitlines()[0]}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"the tokenizer in {path} has no chat_template; the agent loop needs one")
    return tokenizer


def template_check(
    model_dir: Annotated[str, typer.Argument(help="A model (or tokenizer) directory, or 'tiny'.")],
    kwarg: Annotated[
        list[str] | None,
        typer.Option(
            "--kwarg",
            "-k",
            help="chat_template_kwargs entry KEY=VALUE (repeatable), e.g. -k enable_thinking=false",
        ),
    ] = None,
    width: Annotated[int, typer.Option(help="Characters shown of each differing text.")] = 60,
) -> None:
    """Show where the agent loop's token sequence differs from the chat template's own rendering."""
    from turngym.agents.template_check import check_template, report_lines

    tokenizer = load_tokenizer(model_dir)
    report = check_template(tokenizer, parse_options(kwarg))
    typer.echo(f"template-check {model_dir}")
    for line in report_lines(report, limit=max(width, 20)):
        typer.echo(line)
