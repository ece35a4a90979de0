"""Env server under load: many concurrent sessions, every reply checked, against OpenEnv's own stack.

Usage::

    python benchmarks/server_load.py            # 1,000 sessions x 100 steps, then the 256-session duel
    python benchmarks/server_load.py --quick    # a smoke test: 100 sessions x 20 steps, 64-session duel

Each run starts a fresh server process on 127.0.0.1 serving an echo env (the observation after turn
``t`` of action ``a`` is ``"t: a"``; actions are ``"s<session>-t<turn>"``), opens the sessions,
resets them, then every session steps concurrently from one asyncio client process. A reply is
checked against the action sent and its turn, so a reply lost, repeated, misrouted or corrupted
counts as bad; a call that raised counts as lost. Rates are steps divided by the wall time of the
stepping phase; p50/p99 are per-step latencies seen by the client.

Rows:

* ``turngym mux`` / ``turngym ws`` / ``turngym http``: ``turngym serve env``'s app under uvicorn,
  played through :class:`~turngym.envs.remote_async.AsyncRemoteEnv` (the user's path, retries and
  checks on) with ``transport="mux"`` (all sessions on one WebSocket), ``"ws"`` (a WebSocket per
  session) or ``"http"``;
* ``openenv``: OpenEnv's ``create_app`` server and its ``GenericEnvClient`` (asyncio, one
  WebSocket per session) on an equivalent echo env, run in the openenv venv
  (``.ci/setup.d/openenv.sh``; ``TURNGYM_OPENENV_VENV``). Skipped, and said so, without it.

Prints a markdown table and writes ``benchmarks/results/server_load.json`` (``--quick``:
``server_load_quick.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.remote_async import AsyncRemoteEnv

RESULTS = Path(__file__).parent / "results"
SIDE = Path(__file__).parent / "openenv_side.py"
OPENENV_PYTHON = Path(os.environ.get("TURNGYM_OPENENV_VENV", "/opt/turngym-openenv")) / "bin" / "python"


class EchoEnv(TextEnv):
    """Answers turn ``t``'s action ``a`` with ``"t: a"``; one task, no end."""

    nonblocking = True

    def __init__(self) -> None:
        super().__init__(max_turns=10**9)

    @property
    def num_tasks(self) -> int:
        return 1

    def _reset(self, task_id: Any) -> str:
        return "ready"

    def _step(self, action: str) -> StepOutcome:
        return StepOutcome(f"{self._turns}: {action}")


@dataclass(frozen=True)
class Row:
    stack: str
    sessions: int
    steps: int
    steps_per_s: float
    p50_ms: float
    p99_ms: float
    bad_replies: int
    lost_steps: int
    server_cpu_ms_per_step: float | None
    client_cpu_ms_per_step: float | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int) -> None:
    """The turngym server process: the echo env with room for every session of the benchmark."""
    import uvicorn

    from turngym.envs.server import create_env_app

    app = create_env_app("bench/Echo-v0", EchoEnv, max_sessions=4096, max_inflight=8192, openenv=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=4096)


def start(command: list[str], url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"{url}/health", timeout=2)
            return proc
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"server {command} did not start") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def turngym_load(url: str, transport: str, sessions: int, steps: int, server_pid: int) -> Row:
    gate = asyncio.Semaphore(64)  # open sessions 64 at a time: a connect storm measures nothing

    async def opened(i: int) -> AsyncRemoteEnv:
        async with gate:
            env = await AsyncRemoteEnv.open(url, transport=transport, timeout_s=120)  # type: ignore[arg-type]
            await env.reset(seed=i)
            return env

    envs = await asyncio.gather(*(opened(i) for i in range(sessions)))
    latencies: list[float] = []
    bad = lost = 0

    async def play(i: int, env: AsyncRemoteEnv) -> None:
        nonlocal bad, lost
        for t in range(steps):
            action = f"s{i}-t{t}"
            started = time.perf_counter()
            try:
                obs, reward, terminated, truncated, _ = await env.step(action)
            except Exception:
                lost += 1
                continue
            latencies.append(time.perf_counter() - started)
            bad += (obs, reward, terminated, truncated) != (f"{t + 1}: {action}", 0.0, False, False)

    started, server_cpu, client_cpu = time.perf_counter(), process_cpu_s(server_pid), time.process_time()
    await asyncio.gather(*(play(i, env) for i, env in enumerate(envs)))
    elapsed = time.perf_counter() - started
    server_cpu, client_cpu = process_cpu_s(server_pid) - server_cpu, time.process_time() - client_cpu
    await asyncio.gather(*(env.close() for env in envs))
    latencies.sort()
    n = len(latencies)
    p50, p99 = 1000 * latencies[n // 2], 1000 * latencies[int(n * 0.99)]
    cpu = (1000 * server_cpu / n, 1000 * client_cpu / n)
    return Row(f"turngym {transport}", sessions, n, n / elapsed, p50, p99, bad, lost, *cpu)


def run_turngym(transport: str, sessions: int, steps: int) -> Row:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, __file__, "--serve", str(port)], url)
    try:
        return asyncio.run(turngym_load(url, transport, sessions, steps, proc.pid))
    finally:
        stop(proc)


def run_openenv(sessions: int, steps: int) -> Row | None:
    if not OPENENV_PYTHON.exists():
        print(f"openenv rows skipped: no openenv venv at {OPENENV_PYTHON.parent.parent}", file=sys.stderr)
        return None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start([str(OPENENV_PYTHON), str(SIDE), "serve-echo", str(port)], url)
    try:
        command = [str(OPENENV_PYTHON), str(SIDE), "load", url, str(sessions), str(steps), str(proc.pid)]
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600)
    finally:
        stop(proc)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    lost = sessions * steps - r["steps"]
    return Row("openenv", sessions, r["steps"], r["steps"] / r["elapsed_s"], r["p50_ms"], r["p99_ms"],
               r["bad_replies"], lost, r["server_cpu_ms_per_step"], r["client_cpu_ms_per_step"])  # fmt: skip


def table(rows: list[Row]) -> str:
    header = "| stack | sessions | steps | steps/s | p50 ms | p99 ms | bad | lost | CPU ms/step srv / cli |"
    lines = [header, "|---" * 9 + "|"]
    for r in rows:
        cpu = f"{r.server_cpu_ms_per_step:.3f} / {r.client_cpu_ms_per_step:.3f}"
        lines.append(f"| {r.stack} | {r.sessions:,} | {r.steps:,} | {r.steps_per_s:,.0f} | {r.p50_ms:.1f} | "
                     f"{r.p99_ms:.1f} | {r.bad_replies} | {r.lost_steps} | {cpu} |")  # fmt: skip
    return "\n".join(lines)


def duel_ratios(rows: list[Row], sessions: int) -> dict[str, float]:
    """Per turngym client: its steps/s over OpenEnv's and its p99 over OpenEnv's, each summed over
    the rounds at ``sessions`` sessions (total steps / total time; p99s averaged)."""

    def pooled(stack: str) -> tuple[float, float] | None:
        mine = [r for r in rows if r.stack == stack and r.sessions == sessions]
        if not mine:
            return None
        rate = sum(r.steps for r in mine) / sum(r.steps / r.steps_per_s for r in mine)
        return rate, sum(r.p99_ms for r in mine) / len(mine)

    openenv = pooled("openenv")
    out: dict[str, float] = {}
    for transport in ("mux", "ws"):
        mine = pooled(f"turngym {transport}")
        if openenv and mine:
            out[f"{transport}_vs_openenv_steps_ratio"] = mine[0] / openenv[0]
            out[f"{transport}_vs_openenv_p99_ratio"] = mine[1] / openenv[1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke-test size")
    parser.add_argument("--duel-only", action="store_true", help="only the OpenEnv duel's rows")
    parser.add_argument("--rounds", type=int, default=1, help="duel rounds, stacks interleaved")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    big, duel = ((100, 20), (64, 20)) if args.quick else ((1000, 100), (256, 100))
    rows = [] if args.duel_only else [run_turngym("mux", *big)]
    duel_rows: list[Row | None] = []
    for _ in range(args.rounds):  # interleaved, so a change in the machine's load hits every stack
        duel_rows += [run_turngym("mux", *duel), run_openenv(*duel), run_turngym("ws", *duel)]
    if not args.duel_only:
        duel_rows.append(run_turngym("http", *duel))
    rows += [r for r in duel_rows if r is not None]
    print(table(rows))
    ratios = duel_ratios(rows, duel[0])
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    out = RESULTS / ("server_load_quick.json" if args.quick else "server_load.json")
    out.write_text(json.dumps({
        "rows": [asdict(r) for r in rows], "duel": ratios,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_at_end": os.getloadavg()},
        "note": "client and server processes share the machine's cores",
    }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
