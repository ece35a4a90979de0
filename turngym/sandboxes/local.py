"""The ``local`` backend: untrusted code in jailed child processes on this machine.

Each run happens in a worker process (``_worker.py``, run by the system interpreter) that forks a
fresh child per run; the child gets a new session, a throw-away working directory, rlimits and an
unprivileged uid (see the worker's docstring). How the *worker* is jailed depends on the machine:

* ``bwrap`` (bubblewrap installed): new network, PID, IPC, UTS and mount namespaces; the root file
  system is an empty tmpfs with ``/usr`` bound read-only (``/bin``, ``/lib``, ``/lib64`` are links
  into it) and only ``/dev/null``, ``/dev/zero``, ``/dev/random``, ``/dev/urandom``; ``/etc``,
  ``/home``, ``/root``, ``/work`` and every other run's files are simply absent; ``/proc`` shows
  only the jail's own processes; the worker keeps only the capabilities it needs to drop to the run
  uid and to clean up. No network interface but a down loopback exists, so every connection fails.
* ``process`` (no bubblewrap): rlimits, a uid drop when running as root, and a process-group or
  per-uid kill. The network and the file system are *not* isolated; :meth:`LocalSandbox.status`
  says so in its ``isolation`` and ``warnings`` fields.

Each worker owns a *slot* whose uid (``UID_BASE + 64 * (pid % 4096) + slot``) no other worker
uses, so the process-count limit of one run cannot starve another and a kill by uid reaches only
that run. With ``pool_size > 0`` the workers are started ahead of time and reused (a run costs a
fork and a few syscalls); with ``pool_size = 0`` each run starts and stops its own jailed worker.
A worker that dies (the run killed it) is replaced before the next run.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import select
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from turngym.errors import ConfigError, SandboxBusy, SandboxError
from turngym.sandboxes.api import ExecResult, RunRequest, Sandbox

Isolation = Literal["auto", "bwrap", "process"]
WORKER_SOURCE = Path(__file__).with_name("_worker.py")
WORKER_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}
"""The worker's whole environment: a fixed hash seed makes runs reproducible (set order, ``hash``)."""
STARTUP_TIMEOUT_S = 30.0
"""How long a new worker may take to say it is ready."""
ANSWER_GRACE_S = 30.0
"""Seconds past a run's own limits after which a silent worker is given up on (and killed)."""
UID_BASE = 200_000
SLOTS_PER_PROCESS = 64
_BWRAP_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")


@dataclass
class LocalConfig:
    """Limits and jail settings of the local backend."""

    isolation: Isolation = "auto"
    """``bwrap`` (namespaces, hidden files), ``process`` (rlimits only) or ``auto`` (bwrap if installed)."""
    python: str = "/usr/bin/python3"
    """Interpreter that runs the worker and the Python code; the run uid must be able to read it."""
    output_limit: int = 1 << 20
    """Bytes of stdout and of stderr kept per run; the rest is dropped and ``truncated`` is set."""
    max_processes: int = 64
    """RLIMIT_NPROC of a run (processes and threads of its uid)."""
    max_file_bytes: int = 64 << 20
    """RLIMIT_FSIZE: the largest file a run may write."""
    max_open_files: int = 256
    """RLIMIT_NOFILE of a run."""
    work_tmpfs_mb: int = 512
    """Size of the jail's tmpfs that holds the working directories (bwrap only)."""
    acquire_timeout_s: float | None = None
    """How long a run waits for a free pooled worker (``None``: forever; 0: fail at once with SandboxBusy)."""


def _allocate_slot(lock: threading.Lock, used: set[int]) -> int:
    with lock:
        for slot in range(SLOTS_PER_PROCESS):
            if slot not in used:
                used.add(slot)
                return slot
    raise SandboxBusy(
        f"all {SLOTS_PER_PROCESS} sandbox slots of this process are in use; close unused sandboxes "
        "or lower the concurrency"
    )


_SLOT_LOCK = threading.Lock()
_USED_SLOTS: set[int] = set()


class Worker:
    """One jailed worker process and its framed pipe."""

    def __init__(self, config: LocalConfig, isolation: str) -> None:
        self.slot = _allocate_slot(_SLOT_LOCK, _USED_SLOTS)
        self.uid = UID_BASE + SLOTS_PER_PROCESS * (os.getpid() % 4096) + self.slot
        argv = [config.python, "-s", "-c", WORKER_SOURCE.read_text()]
        self.host_dir: Path | None = None
        if isolation == "bwrap":
            command = [*_bwrap_prefix(config), *argv, str(self.uid), "1", "/tmp/w"]
        else:
            self.host_dir = Path(tempfile.gettempdir()) / f"turngym-sandbox-{self.uid}"
            command = [*argv, str(self.uid), "0", str(self.host_dir)]
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=WORKER_ENV,
                cwd="/",
            )
            hello = self._receive()
        except (OSError, SandboxError) as exc:
            self._release()
            raise SandboxError(f"could not start a sandbox worker with {command[0]}: {exc}") from exc
        self.runs_as_root = bool(hello["root"])

    def _receive(self, timeout_s: float = STARTUP_TIMEOUT_S) -> dict[str, Any]:
        """One answer frame; SandboxError if the worker exits or stays silent for ``timeout_s``."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout_s

        def read_exact(size: int) -> bytes:
            data = bytearray()
            while len(data) < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                    raise SandboxError(f"the sandbox worker did not answer within {timeout_s:.0f} s")
                chunk = os.read(fd, size - len(data))
                if not chunk:
                    raise SandboxError("the sandbox worker exited")
                data.extend(chunk)
            return bytes(data)

        size = struct.unpack(">I", read_exact(4))[0]
        return dict(json.loads(read_exact(size)))

    @staticmethod
    def message(request: RunRequest, config: LocalConfig) -> dict[str, Any]:
        """The worker's request frame for ``request`` under ``config``'s limits."""
        return {
            "code": request.code,
            "language": request.language,
            "stdin": request.stdin,
            "timeout_s": request.timeout_s,
            "compile_timeout_s": request.compile_timeout_s,
            "memory_mb": request.memory_mb,
            "files": {name: base64.b64encode(data).decode() for name, data in request.files.items()},
            "output_limit": config.output_limit,
            "max_processes": config.max_processes,
            "max_file_bytes": config.max_file_bytes,
            "max_open_files": config.max_open_files,
            "fetch_files": list(request.fetch_files),
        }

    @staticmethod
    def result(answer: dict[str, Any]) -> ExecResult:
        """The ExecResult of a worker's answer frame (SandboxError if the worker failed)."""
        if "error" in answer:
            raise SandboxError(f"the sandbox worker failed: {answer['error']}")
        compiled = answer["compile"]
        result = dict(answer["result"])
        files = {name: base64.b64decode(data) for name, data in result.pop("files", {}).items()}
        return ExecResult(
            **result, compile_result=None if compiled is None else ExecResult(**compiled), files=files
        )

    def run(self, request: RunRequest, config: LocalConfig) -> ExecResult:
        """Send one request and wait for its result (a dead worker gives status ``killed``)."""
        body = json.dumps(self.message(request, config)).encode()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(struct.pack(">I", len(body)) + body)
            self.process.stdin.flush()
            compile_s = request.compile_timeout_s if request.needs_compile else 0.0
            answer = self._receive(request.timeout_s + compile_s + ANSWER_GRACE_S)
        except (OSError, SandboxError) as exc:
            self.process.kill()
            self.close()
            return ExecResult("killed", None, "", f"sandbox worker lost during the run: {exc}", 0.0)
        return self.result(answer)

    @property
    def alive(self) -> bool:
        """The worker process is still running."""
        return self.process.poll() is None

    def close(self) -> None:
        """Stop the worker: end of input lets it exit; one that does not within 2 s is killed
        (its jail and every process in it go with it)."""
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        try:
            self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.host_dir is not None:
            shutil.rmtree(self.host_dir, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        with _SLOT_LOCK:
            _USED_SLOTS.discard(self.slot)


def _bwrap_prefix(config: LocalConfig) -> list[str]:
    prefix = [
        "bwrap",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for name in ("bin", "lib", "lib64", "sbin"):
        if Path(f"/{name}").is_symlink():
            prefix += ["--symlink", f"usr/{name}", f"/{name}"]
        elif Path(f"/{name}").is_dir():
            prefix += ["--ro-bind", f"/{name}", f"/{name}"]
    for device in ("null", "zero", "random", "urandom"):
        prefix += ["--dev-bind", f"/dev/{device}", f"/dev/{device}"]
    prefix += ["--proc", "/proc", "--size", str(config.work_tmpfs_mb << 20), "--tmpfs", "/tmp"]
    if os.geteuid() == 0:
        prefix += ["--cap-drop", "ALL"]
        for cap in _BWRAP_CAPS:
            prefix += ["--cap-add", cap]
    return [*prefix, "--"]


def detect_isolation(requested: Isolation) -> str:
    """The isolation that will be used for ``requested`` on this machine."""
    has_bwrap = shutil.which("bwrap") is not None
    if requested == "bwrap" and not has_bwrap:
        raise ConfigError("isolation='bwrap' needs bubblewrap: apt-get install bubblewrap, or use 'process'")
    if requested == "auto":
        return "bwrap" if has_bwrap else "process"
    return requested


class LocalSandbox(Sandbox):
    """Run code in jailed child processes; ``pool_size`` pre-started workers make runs cheap."""

    def __init__(self, config: LocalConfig | None = None, *, pool_size: int = 2) -> None:
        self.config = config or LocalConfig()
        if not Path(self.config.python).exists():
            raise ConfigError(
                f"sandbox interpreter {self.config.python} does not exist; set LocalConfig.python "
                "to a Python 3 that an unprivileged user can read"
            )
        if pool_size < 0:
            raise ConfigError(f"pool_size must be >= 0, got {pool_size}")
        self.isolation = detect_isolation(self.config.isolation)
        self.pool_size = pool_size
        self.default_concurrency = max(1, pool_size)
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._closed = False
        self._runs = 0
        self._root = os.geteuid() == 0
        for _ in range(pool_size):
            self._idle.put(Worker(self.config, self.isolation))

    def run_request(self, request: RunRequest) -> ExecResult:
        """Run one validated request in a pooled worker, or in a worker of its own."""
        if self._closed:
            raise SandboxError("this LocalSandbox is closed; create a new one")
        self._runs += 1
        if self.pool_size == 0:
            worker = Worker(self.config, self.isolation)
            try:
                return worker.run(request, self.config)
            finally:
                worker.close()
        worker = self._acquire()
        try:
            return worker.run(request, self.config)
        finally:
            self._give_back(worker)

    def _acquire(self) -> Worker:
        try:
            timeout = self.config.acquire_timeout_s
            worker = self._idle.get(block=timeout != 0, timeout=timeout or None)
        except queue.Empty:
            raise SandboxBusy(
                f"all {self.pool_size} sandbox workers are busy; retry later or raise pool_size"
            ) from None
        if worker.alive:
            return worker
        worker.close()
        try:
            return Worker(self.config, self.isolation)
        except SandboxError:
            self._idle.put(worker)
            raise

    def _give_back(self, worker: Worker) -> None:
        if self._closed or not worker.alive:
            worker.close()
            if self._closed:
                return
            worker = Worker(self.config, self.isolation)
        self._idle.put(worker)

    def status(self) -> dict[str, Any]:
        """Which isolation is active, the limits, and what is *not* isolated."""
        bwrap = self.isolation == "bwrap"
        warnings = []
        if not bwrap:
            warnings.append("no bubblewrap: the network and the file system are not isolated")
        if not self._root:
            warnings.append(
                "not running as root: runs keep the caller's uid, so the process limit is shared "
                "and a run can signal its worker (the worker is then replaced)"
            )
        return {
            "backend": "local",
            "isolation": self.isolation,
            "namespaces": ["net", "pid", "ipc", "uts", "mount"] if bwrap else [],
            "filesystem": "tmpfs root, /usr read-only, rest hidden" if bwrap else "host (not isolated)",
            "network": "none" if bwrap else "host (not isolated)",
            "uid_drop": self._root,
            "pool_size": self.pool_size,
            "idle_workers": self._idle.qsize(),
            "runs": self._runs,
            "interpreter": self.config.python,
            "limits": {
                "output_limit": self.config.output_limit,
                "max_processes": self.config.max_processes,
                "max_file_bytes": self.config.max_file_bytes,
                "max_open_files": self.config.max_open_files,
            },
            "warnings": warnings,
        }

    def close(self) -> None:
        """Stop every pooled worker (idempotent)."""
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
