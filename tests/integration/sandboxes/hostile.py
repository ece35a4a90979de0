"""The hostile-code cases, shared by the local-backend and the server suites.

Each case is a program, its limits, the statuses that count as "contained" and a check of what
it printed. A runner turns a case into an :class:`ExecResult` (directly or over HTTP); the suites
assert the status, the check, that the whole thing ended within the deadline, that no process of
the run survived, and that the next run in the same sandbox still works.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from turngym.sandboxes import ExecResult

OUTPUT_LIMIT = 1 << 20


@dataclass(frozen=True)
class Case:
    name: str
    code: str
    statuses: tuple[str, ...]
    timeout_s: float = 2.0
    memory_mb: int = 256
    language: str = "python"
    check: Callable[[ExecResult], None] = field(default=lambda result: None)
    deadline_s: float = 8.0


def _no_escape(result: ExecResult) -> None:
    assert "ESCAPED" not in result.stdout, result.stdout


def _truncated_print(result: ExecResult) -> None:
    assert len(result.stdout) == OUTPUT_LIMIT
    assert set(result.stdout) == {"x"}


def _oom(result: ExecResult) -> None:
    assert "MemoryError" in result.stderr


WRITE_OUTSIDE = """
import os
for path in ["/tmp/escape-probe", "/usr/escape-probe", "/escape-probe", "/work/main/escape-probe",
             "/dev/escape-probe", "../escape-probe", "/proc/escape-probe"]:
    try:
        with open(path, "w") as handle:
            handle.write("x")
        print("ESCAPED", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
"""

READ_HOST_FILES = """
import os
for path in ["{secret}", "/etc/shadow", "/work/main/pyproject.toml", "/root", "/proc/1/environ"]:
    try:
        if os.path.isdir(path):
            print("ESCAPED", path, os.listdir(path)[:3])
        else:
            with open(path, "rb") as handle:
                handle.read(10)
            print("ESCAPED", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
"""

NETWORK = """
import socket
for host, port in [("127.0.0.1", {port}), ("10.0.0.1", 80), ("1.1.1.1", 53)]:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        print("ESCAPED", host, port)
    except OSError as exc:
        print("refused", host, port, type(exc).__name__)
"""

FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""

KILL_PARENT = """
import os, signal
for target in (os.getppid(), 1, -1):
    try:
        os.kill(target, signal.SIGKILL)
        print("sent", target)
    except OSError as exc:
        print("refused", target, type(exc).__name__)
"""

BACKGROUND = """
import os, subprocess, sys
print(os.getuid(), flush=True)
subprocess.Popen(["sleep", "300"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import time
        while True:
            time.sleep(0.05)
    os._exit(0)
print("left children behind")
"""


def cases(listen_port: int, secret: str = "/nonexistent") -> list[Case]:
    """Every hostile case (``listen_port``: a TCP port the host listens on at 127.0.0.1;
    ``secret``: a world-readable file on the host that no run may read)."""
    return [
        Case("infinite_loop", "while True:\n    pass\n", ("timeout",), timeout_s=1.0),
        Case("sleep_past_timeout", "import time\ntime.sleep(60)\n", ("timeout",), timeout_s=1.0),
        Case("fork_bomb", FORK_BOMB, ("timeout",), timeout_s=2.0, deadline_s=15.0),
        Case("memory_bomb_one_block", "x = bytearray(8 * 1024**3)\n", ("oom",), check=_oom),
        Case(
            "memory_bomb_growth",
            "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024**2))\n",
            ("oom",),
            check=_oom,
            timeout_s=10.0,  # zero-filling 256 MiB takes seconds of wall time on a loaded machine
            deadline_s=15.0,
        ),
        Case("print_100mb", "import sys\nsys.stdout.write('x' * 10**8)\n", ("ok",), check=_truncated_print),
        Case("write_outside_workdir", WRITE_OUTSIDE, ("ok",), check=_no_escape),
        Case("read_host_files", READ_HOST_FILES.replace("{secret}", secret), ("ok",), check=_no_escape),
        Case("network", NETWORK.replace("{port}", str(listen_port)), ("ok",), check=_no_escape),
        Case("kill_the_parent", KILL_PARENT, ("ok", "killed")),
        Case("background_processes", BACKGROUND, ("ok",)),
        Case(
            "bash_fork_bomb",
            ":(){ :|:& };:\nsleep 30\n",
            ("timeout", "ok", "error"),
            language="bash",
            timeout_s=2.0,
            deadline_s=15.0,
        ),
    ]


@contextmanager
def host_secret() -> Iterator[str]:
    """A world-readable file in the host's /tmp, removed afterwards."""
    path = Path(tempfile.gettempdir()) / f"turngym-secret-{uuid.uuid4().hex}"
    path.write_text("host secret")
    path.chmod(0o644)
    try:
        yield str(path)
    finally:
        path.unlink()


def processes_of_uid(uid: int) -> list[int]:
    """Pids of live (not zombie) processes whose real uid is ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            found.append(int(entry.name))
    return found


def running_as_root() -> bool:
    return os.geteuid() == 0
