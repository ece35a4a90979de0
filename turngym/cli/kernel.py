"""``turngym kernel eval|tasks|export`` and ``turngym serve kernels``.

``kernel eval TASK CANDIDATE`` evaluates one answer (TASK: a KernelBench task file or a built-in
task id) and exits 0 whenever the evaluation ran, whatever its verdict; ``--json`` prints one JSON
object (``compiled``, ``correct``, ``speedup``, ``hacks`` as ``[{name, detail}]``, ``reward``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from turngym.envs.kernel.evaluate import EvalConfig, evaluate
from turngym.envs.kernel.rewards import RewardConfig, turn_reward
from turngym.envs.kernel.server import KernelJobPool, create_kernel_app
from turngym.envs.kernel.tasks import KernelTask, builtin_tasks, find_task, load_task_dir, load_task_file
from turngym.errors import ConfigError

kernel_app = typer.Typer(
    help="Kernel tasks: evaluate an answer, list or export the built-in tasks.", no_args_is_help=True
)


def _task(target: str) -> KernelTask:
    path = Path(target)
    if path.suffix == ".py" or path.exists():
        return load_task_file(path)
    return find_task(builtin_tasks(), target)


def _read(path: Path) -> str:
    if not path.is_file():
        raise ConfigError(f"candidate file {path} does not exist")
    return path.read_text()


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.4g}{unit}"


@kernel_app.command("eval")
def eval_command(
    task: Annotated[
        str, typer.Argument(help="KernelBench task file (Model, get_inputs) or a built-in task id")
    ],
    candidate: Annotated[Path, typer.Argument(help="Python file defining ModelNew")],
    backend: Annotated[str, typer.Option(help="cpp | triton | cuda")] = "cpp",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    trials: Annotated[int, typer.Option(min=2, help="Random input sets checked")] = 3,
    perf_trials: Annotated[int, typer.Option(min=1, help="Timed forward calls")] = 20,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds before the evaluation is killed")] = 180.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Evaluate CANDIDATE against TASK: compile, correctness, speedup, hacking checks, reward."""
    reference = _task(task).reference
    source = _read(candidate)
    config = EvalConfig(
        backend=backend,
        device=device,
        num_correct_trials=trials,
        num_perf_trials=perf_trials,
        timeout_s=timeout,
    )  # type: ignore[arg-type]  # device is checked by EvalConfig.__post_init__
    result = evaluate(reference, source, config)
    reward = turn_reward(result, RewardConfig())
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "reward": reward}))
        return
    rows = [
        ("status", result.category),
        ("compiled", str(result.compiled)),
        (
            "correct",
            f"{result.correct} ({result.correctness_trials[0]}/{result.correctness_trials[1]} input sets)",
        ),
        ("max difference", _fmt(result.max_difference)),
        ("reference", _fmt((result.reference_ms or {}).get("median"), " ms (median)")),
        ("kernel", _fmt((result.kernel_ms or {}).get("median"), " ms (median)")),
        ("speedup", _fmt(result.speedup, "x") if result.speedup is not None else "not measured"),
        ("coverage", _fmt(result.coverage)),
        ("hacks", "; ".join(f"{h.name}: {h.detail}" for h in result.hacks) or "none"),
        ("reward", f"{reward:.4g}"),
    ]
    if result.message:
        rows.append(("message", result.message))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


@kernel_app.command("tasks")
def tasks_command(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="List a KernelBench directory instead")
    ] = None,
) -> None:
    """List the built-in tasks (or those of a KernelBench checkout)."""
    tasks = load_task_dir(directory) if directory is not None else builtin_tasks()
    width = max(len(t.task_id) for t in tasks)
    for t in tasks:
        solutions = ", ".join(f"{b} ({len(s)} stage{'s' * (len(s) > 1)})" for b, s in t.solutions.items())
        typer.echo(f"{t.task_id:<{width}}  level {t.level}  {solutions or 'no reference solution'}")


@kernel_app.command("export")
def export_command(directory: Annotated[Path, typer.Argument(help="Folder to write (created)")]) -> None:
    """Write the built-in tasks as KernelBench files (levelN/ID.py), solutions under solutions/BACKEND/."""
    for t in builtin_tasks():
        target = directory / f"level{t.level}" / f"{t.task_id}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(t.reference)
        for backend, stages in t.solutions.items():
            out = directory / "solutions" / backend / f"{t.task_id}.py"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(stages[-1])
    typer.echo(f"wrote {len(builtin_tasks())} tasks to {directory}")


def serve_kernels(
    host: Annotated[str, typer.Option(help="Interface to bind (127.0.0.1 keeps it local)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 10907,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one per GPU, or N on a CPU)")] = 2,
    max_queue: Annotated[int, typer.Option(min=1, help="Queued jobs before 429")] = 256,
    build_dir: Annotated[str | None, typer.Option(help="Extension build cache")] = None,
) -> None:
    """Serve POST /evaluate, /evaluate/batch, GET /status, /result, /health, /metrics, /workers."""
    pool = KernelJobPool(workers=workers, max_queue=max_queue, build_dir=build_dir)
    try:
        uvicorn.run(create_kernel_app(pool), host=host, port=port, log_level="info")
    finally:
        pool.close()
