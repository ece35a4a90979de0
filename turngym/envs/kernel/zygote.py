"""A pre-started evaluation zygote: imports torch once, then forks one child per evaluation.

A fresh ``python -m turngym.envs.kernel.runner`` per evaluation spends most of its time starting
Python and importing torch. The zygote (``python -m turngym.envs.kernel.zygote``, started by
:class:`Zygote`) does that once and then, for each request on its stdin, forks a child that runs
exactly what the runner runs (:func:`turngym.envs.kernel.runner.run_job`: hack probes, launch
hooks and timers installed fresh in the child) and exits. The child is isolated as the runner
was: its own process and session (a timeout kills its whole process group), no core files,
SIGKILL when the zygote dies (the zygote likewise when its host dies), so a crash, a segfault or a
hang ends that child only. The candidate is never loaded into the zygote.

Lines of JSON on the zygote's stdin/stdout: ``{"ready": true, "pid"}`` once torch is imported;
then per request ``{"job", "result", "log", "cwd", "env"}`` → ``{"pid"}`` when the child is
forked, ``{"exit": code}`` when it ended (negative: killed by that signal).

CPU only. CUDA cannot be used in a child forked after the parent initialised it, and a zygote
that never touches CUDA would gain little on a GPU (the child pays CUDA's start-up anyway), so
evaluations on ``cuda`` start a fresh process (:func:`turngym.envs.kernel.evaluate.evaluate`).
Threads: importing torch starts no intra-op threads and the zygote runs no tensor op, so a fork
copies no thread pool state; the child sets its own thread count (``torch.set_num_threads``).
Variables read at import (:data:`IMPORT_TIME_VARIABLES`: ``OMP_NUM_THREADS``, and
``TRITON_INTERPRET`` because ``torch._dynamo`` imports Triton) are the zygote's, so jobs that
differ in them get different zygotes (:class:`ZygotePool`).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from turngym.errors import SandboxError

PRELOADED = (
    "torch",
    "torch._dynamo",
    "torch.utils._python_dispatch",
    "torch.utils.cpp_extension",
    "turngym.envs.kernel.hacks",
    "turngym.envs.kernel.runner",
)
"""What the zygote imports before its first fork (``torch._dynamo``: the probe's dispatch mode
imports it, ≈ 7 s on a shared CPU); every child inherits them imported."""

IMPORT_TIME_VARIABLES = ("OMP_NUM_THREADS", "TRITON_INTERPRET")
"""Read when the zygote imports torch (OpenMP) and Triton (``torch._dynamo`` imports it): jobs that
differ in these get different zygotes."""

READY_TIMEOUT_S = 300.0
"""How long a starting zygote may take to import torch (a shared CPU can make this slow)."""


class ZygoteError(SandboxError):
    """The zygote could not start or died while serving a request."""


def _child(request: dict[str, Any], proto_fds: tuple[int, int], zygote: int) -> None:
    """In the forked child: isolate, run the job, write the result, exit without teardown."""
    code = 1
    try:
        os.setsid()
        from turngym.envs.kernel.runner import _die_with_parent, run_job

        _die_with_parent()
        if os.getppid() != zygote:  # the zygote died before the death signal was armed
            return
        for fd in proto_fds:
            os.close(fd)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        gc.unfreeze()
        job = json.loads(Path(request["job"]).read_text())
        result = run_job(job)
        Path(request["result"]).write_text(json.dumps(result))
        code = 0
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(proto_in: int, proto_out: int) -> None:
    """Fork one child per request line until end of input; report each child's pid and exit code."""
    reader = os.fdopen(proto_in, "r")
    zygote = os.getpid()
    for line in reader:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request, (proto_in, proto_out), zygote)
        os.write(proto_out, (json.dumps({"pid": pid}) + "\n").encode())
        _, status = os.waitpid(pid, 0)
        os.write(proto_out, (json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n").encode())


def main() -> None:
    """The zygote process: import what every evaluation needs, say ready, serve."""
    from turngym.envs.kernel.runner import _die_with_parent

    host = os.getppid()
    _die_with_parent()
    if os.getppid() != host:  # the host died before the death signal was armed
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    for name in PRELOADED:
        importlib.import_module(name)

    gc.collect()
    gc.freeze()  # children do not copy the pages the collector would touch
    os.write(proto_out, (json.dumps({"ready": True, "pid": os.getpid()}) + "\n").encode())
    serve(proto_in, proto_out)


class Zygote:
    """The host's handle on one zygote process: one evaluation at a time, restarted when it died."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.lock = threading.Lock()
        self.starts = 0
        """Zygote processes started (more than one: it died and was restarted)."""

    @property
    def pid(self) -> int | None:
        """The running zygote's pid (``None`` before the first start)."""
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        """The zygote process is running."""
        return self._proc is not None and self._proc.poll() is None

    def ensure_started(self) -> None:
        """Start the zygote (again, when it died) and wait until it has imported torch."""
        if self.alive():
            return
        self.close()
        self._buffer = b""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "turngym.envs.kernel.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self._env,
            start_new_session=True,
        )
        self.starts += 1
        message = self._read(time.monotonic() + READY_TIMEOUT_S)
        if not message or not message.get("ready"):
            self.close()
            raise ZygoteError("the evaluation zygote did not start")

    def run(self, request: dict[str, Any], timeout_s: float) -> tuple[int | None, int]:
        """Run one job in a forked child: ``(exit code or None on timeout, child pid)``."""
        deadline = time.monotonic() + timeout_s
        pid = self._fork(request)
        if pid is None:  # it had died since the last job (its exit not yet seen): once more, fresh
            self.close()
            pid = self._fork(request)
        if pid is None:
            self.close()
            raise ZygoteError("the evaluation zygote died before forking the evaluation")
        ended = self._read(deadline)
        _kill_session(pid)  # whatever the candidate left running in the child's session
        if ended is None and self.alive():  # timed out: the child is killed, collect its exit report
            if self._read(time.monotonic() + 30.0) is None:
                self.close()
            return None, pid
        if ended is None or "exit" not in ended:
            self.close()
            raise ZygoteError("the evaluation zygote died during the evaluation")
        return int(ended["exit"]), pid

    def _fork(self, request: dict[str, Any]) -> int | None:
        """Send the job and return the child's pid; ``None`` when the zygote is dead."""
        self.ensure_started()
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            return None
        started = self._read(time.monotonic() + 60.0)
        return int(started["pid"]) if started and "pid" in started else None

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or ``None`` at the deadline or when the zygote's output ended."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        """Stop the zygote (its running child, if any, gets SIGKILL with it)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _kill_session(pid: int) -> None:
    """SIGKILL the child's process group (the child called ``setsid``) and the child itself."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _import_time_key(env: dict[str, str]) -> tuple[str | None, ...]:
    return tuple(env.get(name) for name in IMPORT_TIME_VARIABLES)


class ZygotePool:
    """Zygotes of this process: an idle one serves each evaluation, a new one starts when all are busy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zygotes: list[Zygote] = []

    def acquire(self, env: dict[str, str]) -> Zygote:
        """An idle zygote for a job run with ``env``, locked (release ``zygote.lock`` after).

        Each child gets its job's whole environment, but what is read at import time comes from
        the environment its zygote was started with: a zygote serves the jobs that agree with it
        on :data:`IMPORT_TIME_VARIABLES`; a new one is started with ``env`` otherwise."""
        key = _import_time_key(env)
        with self._lock:
            for zygote in self._zygotes:
                if _import_time_key(zygote._env) == key and zygote.lock.acquire(blocking=False):
                    return zygote
            zygote = Zygote(env)
            zygote.lock.acquire()
            self._zygotes.append(zygote)
            return zygote

    def zygotes(self) -> list[Zygote]:
        """Every zygote this pool started."""
        with self._lock:
            return list(self._zygotes)

    def close(self) -> None:
        """Stop every zygote."""
        for zygote in self.zygotes():
            zygote.close()


POOL = ZygotePool()
"""The process's zygotes (one per concurrently running evaluation)."""


if __name__ == "__main__":
    main()
