"""``turngym eval``: run an agent on an environment, print a summary table, save trajectories.

Agents: ``expert`` / ``random`` (model-free baselines), ``hf:tiny`` (the project's tiny model,
built on first use), ``hf:PATH`` (any local Hugging Face causal-LM directory, or a LoRA adapter
directory: its base plus the adapter), ``hf:random:ARCH`` (a randomly initialised real
architecture), ``vllm:tiny`` / ``vllm:PATH`` (the same models served by an in-process vLLM engine)
and ``openai:URL`` (any OpenAI-compatible endpoint). ``--episodes N --group-size G`` plays
``N / G`` tasks, G episodes each with the same task id and env seed (task ``k`` uses seed
``--seed + k``), so the spread within a group is the policy's own. Every agent runs on the
asynchronous engine (:mod:`turngym.agents.async_loop`): ``--concurrency C`` episodes (default 32)
are in flight at once, each stepping its env in a thread pool; ``hf``/``vllm`` batch whatever
completion requests wait, ``openai`` sends up to C requests at a time, and a finished episode's
slot starts the next.

A model trained by ``turngym train`` (``hf:runs/<run>/final``) is evaluated by default on the env
it was trained on, with its held-out split and rollout settings (``final/turngym.json``); the
environment argument, ``-o`` options and the loop options given on the command line win.

The table: success rate with its 95% Wilson interval, episodes that ended in an infrastructure
failure (``env_error``, ``policy_error``, ``timeout``: left out of every other column, since they say
nothing about the agent), mean return, mean turns, invalid actions per turn, parse failures per turn
and generated tokens per second (wall clock of the whole run). With ``--out OUT.jsonl`` the
trajectories are saved there, with a markdown report ``OUT.md`` (the table, outcomes by stop
reason, success per task) and its plot ``OUT.png`` beside them. When every episode fails that way the
command fails with the first error instead of printing a table; the run stops after its first C
episodes when none of them got through.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from turngym.agents.baselines import BASELINES, summarize
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.cli.envs import OptionList, make_env, parse_options, prepare_output
from turngym.errors import ConfigError, TurngymError
from turngym.reports import write_eval_report
from turngym.trainers.metrics import format_interval
from turngym.trainers.rundir import ENV_RECORD, read_env_record
from turngym.trajectory import Trajectory, write_jsonl

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

AGENTS = (*BASELINES, "hf:tiny", "hf:PATH", "vllm:tiny", "vllm:PATH", "openai:URL")


def _jobs(episodes: int, group_size: int, seed: int, num_tasks: int) -> list[tuple[int, int]]:
    """``(task_id, seed)`` per episode: G episodes per task; tasks cycle when there are fewer than asked."""
    if episodes % group_size:
        raise ConfigError(
            f"--episodes ({episodes}) must be a multiple of --group-size ({group_size}); "
            f"e.g. --episodes {episodes - episodes % group_size or group_size}"
        )
    return [
        (task % num_tasks, seed + task) for task in range(episodes // group_size) for _ in range(group_size)
    ]


def _progress() -> Progress:
    """A transient bar on stderr in a terminal; nothing otherwise (it would leave an empty line)."""
    err = Console(stderr=True)
    return Progress(
        TextColumn("episodes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip


class _NothingGotThrough(Exception):
    """The first ``--concurrency`` episodes all failed for an infrastructure reason."""


def _run_agent(
    env_id: str,
    options: dict[str, Any],
    agent: str,
    policy: Any,
    jobs: Sequence[tuple[int, int]],
    config: LoopConfig,
    concurrency: int,
) -> list[Trajectory]:
    """Every agent through the asynchronous engine, ``concurrency`` episodes at a time; stops early
    when the first ``concurrency`` episodes all failed for an infrastructure reason (an endpoint
    that is down: the rest would fail alike)."""
    from turngym.agents.async_loop import (
        AsyncSettings,
        run_baseline_episodes,
        run_chat_episodes,
        run_episodes,
    )

    def factory() -> Any:
        return make_env(env_id, options)

    settings = AsyncSettings(max_concurrent=concurrency)  # timing-free batches: repeatable numbers
    first = min(concurrency, len(jobs))
    done: list[Trajectory] = []
    with _progress() as progress:
        bar = progress.add_task("episodes", total=len(jobs))

        def finished(trajectory: Trajectory) -> None:
            done.append(trajectory)
            progress.advance(bar)
            if len(done) == first < len(jobs) and all(t.stop_reason.is_failure for t in done):
                raise _NothingGotThrough

        try:
            if agent in BASELINES:
                return run_baseline_episodes(factory, env_id, agent, jobs, settings, finished)
            if agent.startswith("openai:"):
                return run_chat_episodes(factory, policy, jobs, config, settings, finished)
            return run_episodes(factory, policy, policy.tokenizer, jobs, config, settings, finished)
        except _NothingGotThrough:
            return done[:first]  # (episodes that ended while the run stopped are left out)


def _load_policy(
    agent: str, model: str | None, api: str, concurrency: int, threads: int | None, device: str
) -> Any:
    model_dir = _model_dir(agent)
    if agent.startswith("hf:random:"):
        from turngym.agents.hf import HFPolicy

        return HFPolicy.from_pretrained(agent[3:], device=device, num_threads=threads)
    has_model = model_dir is not None and (
        (model_dir / "config.json").is_file() or (model_dir / "adapter_config.json").is_file()
    )
    if model_dir is not None and not has_model:
        raise ConfigError(
            f"{agent} is not a model directory (no config.json); give a directory written by "
            f"save_pretrained (e.g. a run's final/), or {agent.partition(':')[0]}:tiny"
        )
    if agent.startswith("hf:"):
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            raise ConfigError(f'--agent {agent} needs torch and transformers: pip install -e ".[train]"')
        from turngym.agents.hf import HFPolicy
        from turngym.agents.tiny import ensure_tiny

        if model_dir is None:
            return HFPolicy.from_pretrained(ensure_tiny(), device=device, num_threads=threads or 1)
        return HFPolicy.from_pretrained(model_dir, device=device, num_threads=threads)
    if agent.startswith("vllm:"):
        from turngym.agents.tiny import ensure_tiny
        from turngym.agents.vllm import VLLMPolicy

        return VLLMPolicy(ensure_tiny() if model_dir is None else model_dir, name=agent)
    from turngym.agents.openai import OpenAIConfig, OpenAIPolicy

    name = model or os.environ.get("TURNGYM_OPENAI_MODEL", "default")
    # `api` is a plain CLI string; OpenAIConfig.__post_init__ rejects anything but chat/completions
    return OpenAIPolicy(OpenAIConfig(agent[7:], model=name, api=api, concurrency=concurrency))  # type: ignore[arg-type]


def _model_dir(agent: str) -> Path | None:
    """The local model directory of ``hf:PATH`` / ``vllm:PATH`` (None for ``tiny`` and other agents)."""
    backend, _, target = agent.partition(":")
    if backend not in ("hf", "vllm") or target == "tiny":
        return None
    return Path(target).expanduser()


def _tokens(trajectories: Sequence[Trajectory]) -> int:
    sampled = sum(len(turn.action_ids) for t in trajectories for turn in t.turns)
    return sampled + sum(int(t.metadata.get("completion_tokens", 0)) for t in trajectories)


def _parse_failure_rate(trajectories: Sequence[Trajectory]) -> float:
    turns = sum(len(t.turns) for t in trajectories)
    failures = sum(float(t.metadata.get("metrics", {}).get("parse_failures", 0.0)) for t in trajectories)
    return failures / turns if turns else 0.0


def evaluate(
    env_id: Annotated[
        str | None,
        typer.Argument(help="Registered id, e.g. turngym/Maze-v0 (default: a trained model's own env)"),
    ] = None,
    agent: Annotated[str, typer.Option(help=f"Agent: {' | '.join(AGENTS)}")] = "expert",
    episodes: Annotated[int, typer.Option(min=1)] = 20,
    group_size: Annotated[int, typer.Option(min=1, help="Episodes per task (same task id and seed)")] = 1,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Episodes in flight at once (asynchronous; any agent)")
    ] = 32,
    seed: int = 0,
    option: OptionList = None,
    context: Annotated[str | None, typer.Option(help="full | window:k (default full)")] = None,
    temperature: Annotated[
        float | None, typer.Option(min=0.0, help="Sampling temperature (default 1)")
    ] = None,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0)] = 1.0,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, help="Generated tokens per turn (default 64)")
    ] = None,
    max_context: Annotated[
        int | None, typer.Option(min=1, help="Context tokens before an episode is truncated (default 4096)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="openai: model name (default $TURNGYM_OPENAI_MODEL)")
    ] = None,
    api: Annotated[str, typer.Option(help="openai: chat | completions")] = "chat",
    threads: Annotated[int | None, typer.Option(min=1, help="hf: CPU threads (hf:tiny default 1)")] = None,
    device: Annotated[str, typer.Option(help="hf: cpu | cuda")] = "cpu",
    out: Annotated[
        Path | None,
        typer.Option(help="Write the trajectories to this JSONL file, a report OUT.md and OUT.png beside it"),
    ] = None,
    template_kwarg: Annotated[
        list[str] | None,
        typer.Option(
            help="hf/vllm: chat_template_kwargs entry KEY=VALUE (repeatable), e.g. enable_thinking=false"
        ),
    ] = None,
) -> None:
    """Evaluate an agent on an environment and print success rate, return, turns and speed."""
    if agent not in BASELINES and not agent.startswith(("hf:", "vllm:", "openai:")):
        raise ConfigError(f"unknown agent {agent!r}; choose one of {', '.join(AGENTS)}")
    model_dir = _model_dir(agent)
    env_id, record = _env_and_record(env_id, agent, model_dir)
    trained = record or {}
    options = {**trained.get("env_kwargs", {}), **parse_options(option)}
    context = context or trained.get("context", "full")
    max_new_tokens = max_new_tokens or int(trained.get("max_new_tokens", 64))
    max_context = max_context or int(trained.get("max_context_tokens", 4096))
    temperature = float(trained.get("temperature", 1.0)) if temperature is None else temperature
    if record is not None:
        flags = " ".join(f"-o {k}={v}" for k, v in options.items())
        console.print(
            f"the training settings recorded in {model_dir / ENV_RECORD}: {env_id} {flags} "
            f"--max-new-tokens {max_new_tokens} --context {context} --max-context {max_context} "
            f"--temperature {temperature:g}",
            soft_wrap=True,
            markup=False,
        )
    if out is not None:
        prepare_output(out)
    jobs = _planned_jobs(env_id, options, episodes, group_size, seed)
    start = time.perf_counter()
    if agent in BASELINES:
        trajectories = _run_agent(env_id, options, agent, None, jobs, LoopConfig(env_id=env_id), concurrency)
    else:
        sampling = SamplingParams(
            temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
        )
        config = LoopConfig(
            context=context,
            sampling=sampling,
            max_context_tokens=max_context,
            batch_size=concurrency,
            env_id=env_id,
            chat_template_kwargs=parse_options(template_kwarg),
        )
        policy = _load_policy(agent, model, api, concurrency, threads, device)
        try:
            trajectories = _run_agent(env_id, options, agent, policy, jobs, config, concurrency)
        finally:
            if hasattr(policy, "close"):
                policy.close()
    _report(env_id, agent, trajectories, time.perf_counter() - start, len(jobs), out)


def _env_and_record(
    env_id: str | None, agent: str, model_dir: Path | None
) -> tuple[str, dict[str, Any] | None]:
    """The env to evaluate on and the training record in ``model_dir`` that applies to it: the
    model's own env when ``env_id`` is None; no record when the model was trained on another env."""
    record = read_env_record(model_dir) if model_dir is not None else None
    if record is not None and env_id not in (None, record["env_id"]):
        record = None  # another env than the model was trained on: none of its settings apply
    if env_id is None:
        if record is None:
            raise ConfigError(
                f"give the environment to evaluate on, e.g. turngym eval turngym/Maze-v0 --agent {agent} "
                f"(only a model trained by turngym train knows its own: its {ENV_RECORD})"
            )
        env_id = str(record["env_id"])
    return env_id, record


def _planned_jobs(
    env_id: str, options: dict[str, Any], episodes: int, group_size: int, seed: int
) -> list[tuple[int, int]]:
    """:func:`_jobs` for the env's task count."""
    env = make_env(env_id, options)  # constructor mistakes surface before any model work
    jobs = _jobs(episodes, group_size, seed, env.num_tasks)
    env.close()  # every episode builds its own env
    return jobs


def _report(
    env_id: str, agent: str, trajectories: list[Trajectory], wall: float, planned: int, out: Path | None
) -> None:
    """The summary table printed, and with ``out`` the trajectories and the markdown report written;
    fails when every episode failed for an infrastructure reason."""
    _fail_when_nothing_got_through(trajectories, planned)
    row = summary_row(env_id, agent, trajectories, wall)
    _print_summary(row, trajectories)
    if out is not None:
        write_jsonl(out, trajectories)
        report = write_eval_report(out, f"{agent} on {env_id}", SUMMARY_HEADER, row, trajectories)
        console.print(f"trajectories written to {out}, report to {report} (browse: turngym view {out})")


def _error_text(trajectory: Trajectory) -> str:
    """The error that ended a failed episode (the loop's, or the baseline's last turn's)."""
    if "error" in trajectory.metadata:
        return str(trajectory.metadata["error"])
    last = trajectory.turns[-1].info.get("error") if trajectory.turns else None
    return str(last or trajectory.stop_reason.value)


def _reasons(failed: Sequence[Trajectory]) -> str:
    counts = Counter(t.stop_reason.value for t in failed)
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items()))


def _fail_when_nothing_got_through(trajectories: Sequence[Trajectory], planned: int) -> None:
    if not trajectories or not all(t.stop_reason.is_failure for t in trajectories):
        return
    n = len(trajectories)
    stopped = f"; stopped after the first {n} of {planned}" if n < planned else ""
    raise TurngymError(
        f"all {n} episodes failed for an infrastructure reason ({_reasons(trajectories)}), so there is "
        f"nothing to score{stopped}; first: {_error_text(trajectories[0])}"
    )


SUMMARY_HEADER = (
    "env", "agent", "episodes", "success", "95% CI", "infra errors", "mean return", "mean turns",
    "invalid/turn", "parse fail/turn", "tokens/s",
)  # fmt: skip
"""The columns of the summary table (printed, and in the markdown report)."""


def summary_row(env_id: str, agent: str, trajectories: Sequence[Trajectory], wall: float) -> list[str]:
    """The summary table's one row (:data:`SUMMARY_HEADER`)."""
    failed = [t for t in trajectories if t.stop_reason.is_failure]
    scored = [t for t in trajectories if not t.stop_reason.is_failure]
    s = summarize(scored)
    tokens = _tokens(trajectories)
    counts = Counter(t.stop_reason.value for t in failed)
    return [
        env_id, agent, str(s.episodes), f"{s.success_rate:.3f}", format_interval(*s.success_ci95),
        ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "0",
        f"{s.mean_return:.3f}", f"{s.mean_turns:.1f}", f"{s.invalid_rate:.2f}",
        f"{_parse_failure_rate(scored):.2f}", f"{tokens / wall:.0f}" if tokens else "-",
    ]  # fmt: skip


def _print_summary(row: Sequence[str], trajectories: Sequence[Trajectory]) -> None:
    failed = [t for t in trajectories if t.stop_reason.is_failure]
    table = Table(*SUMMARY_HEADER)
    table.add_row(*row)
    console.print(table)
    if failed:
        console.print(
            f"[yellow]{len(failed)} of {len(trajectories)} episodes ended in an infrastructure failure "
            f"({_reasons(failed)}), not a task failure: they are left out of the other columns; "
            f"first: {escape(_error_text(failed[0]))}[/]",
            soft_wrap=True,
        )
