"""Kernel tasks in KernelBench's format, and a loader for a directory of them.

A task file is Python source defining ``class Model(nn.Module)``, ``get_inputs()`` (the forward
arguments) and ``get_init_inputs()`` (the constructor arguments). An answer is source defining
``class ModelNew`` with the same constructor and forward signature, built on custom kernels.

:func:`load_task_dir` reads a KernelBench checkout (``KernelBench/level1/1_Square_matrix_...py``)
or any folder of such files: level folders named ``level<N>`` give the level, files directly in
the folder get level 1, and the task id is ``level<N>/<file stem>``. Files are checked by their
text (``class Model``, ``def get_inputs``, ``def get_init_inputs``); nothing is executed here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from turngym.errors import ConfigError

BACKENDS = ("cpp", "triton", "cuda")
"""Kernel languages an answer may use: C++ CPU extensions, Triton, CUDA extensions."""

_LEVEL_DIR = re.compile(r"^level(\d+)$")


@dataclass(frozen=True)
class KernelTask:
    """One KernelBench-format problem."""

    task_id: str
    """Unique name, e.g. ``1_ReLU`` (built-in) or ``level2/12_Gemm_Relu`` (loaded)."""
    level: int
    """Difficulty: 1 single operators, 2 fused patterns, 3 blocks and architectures."""
    reference: str
    """Source of the task file (``Model``, ``get_inputs``, ``get_init_inputs``)."""
    solutions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Backend -> reference ``ModelNew`` sources, one per refinement stage (last = best)."""

    def __post_init__(self) -> None:
        check_task_source(self.reference, self.task_id)
        unknown = set(self.solutions) - set(BACKENDS)
        if unknown:
            raise ConfigError(f"task {self.task_id}: unknown solution backends {sorted(unknown)}")

    @property
    def name(self) -> str:
        """The problem's name without its number or folder (``ReLU``)."""
        stem = self.task_id.rsplit("/", 1)[-1]
        return stem.split("_", 1)[1] if "_" in stem and stem.split("_", 1)[0].isdigit() else stem


def check_task_source(source: str, where: str = "task") -> None:
    """Raise :class:`ConfigError` unless ``source`` parses and defines the KernelBench entry points."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigError(f"{where}: not valid Python ({exc.msg}, line {exc.lineno})") from exc
    names = {node.name for node in tree.body if isinstance(node, ast.ClassDef | ast.FunctionDef)}
    missing = [n for n in ("Model", "get_inputs", "get_init_inputs") if n not in names]
    if missing:
        raise ConfigError(
            f"{where}: a KernelBench task defines class Model, get_inputs() and get_init_inputs(); "
            f"missing {', '.join(missing)}"
        )


def load_task_file(path: str | Path, *, level: int = 1, task_id: str | None = None) -> KernelTask:
    """One task file as a :class:`KernelTask` (no solutions)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"task file {path} does not exist")
    return KernelTask(task_id=task_id or path.stem, level=level, reference=path.read_text())


def _number(path: Path) -> tuple[int, str]:
    head = path.stem.split("_", 1)[0]
    return (int(head) if head.isdigit() else 1 << 30, path.stem)


def load_task_dir(root: str | Path, *, levels: tuple[int, ...] | None = None) -> list[KernelTask]:
    """Every task file under ``root`` (``level<N>`` sub-folders or flat), ordered by level then number."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"kernel task directory {root} does not exist")
    groups: list[tuple[int, str, Path]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        match = _LEVEL_DIR.match(sub.name)
        if match:
            groups.append((int(match.group(1)), sub.name + "/", sub))
    if not groups:
        groups = [(1, "", root)]
    tasks = []
    for level, prefix, folder in sorted(groups):
        if levels is not None and level not in levels:
            continue
        for path in sorted(folder.glob("*.py"), key=_number):
            if path.name.startswith("_"):
                continue
            tasks.append(load_task_file(path, level=level, task_id=prefix + path.stem))
    if not tasks:
        raise ConfigError(f"no KernelBench task files (*.py with class Model) under {root}")
    return tasks


def builtin_tasks() -> tuple[KernelTask, ...]:
    """turngym's own task set (see :mod:`turngym.envs.kernel.builtin_tasks`)."""
    from turngym.envs.kernel.builtin_tasks import BUILTIN_TASKS

    return BUILTIN_TASKS


def find_task(tasks: tuple[KernelTask, ...] | list[KernelTask], task_id: str) -> KernelTask:
    """The task named ``task_id`` (its full id or its bare name)."""
    for task in tasks:
        if task_id in (task.task_id, task.name):
            return task
    raise ConfigError(f"no kernel task {task_id!r}; `turngym kernel tasks` lists them")
