"""Every command in the README runs as written, in order, in a fresh directory.

Each README command is one test (ids are the commands), run in a temporary directory holding a copy
of ``examples/`` (so ``runs/`` lands there), with this environment's ``turngym`` first on PATH. What
the test adds to a command, and why:

* ``turngym train ...`` gets ``SHORT`` appended (2 iterations of 2 groups × 2 rollouts, a 2-step
  SFT, 8 held-out episodes): the default job takes about 5 minutes, and the command line is
  otherwise run as written.
* a foreground ``turngym serve ...`` or ``turngym view ...`` (a user stops it with Ctrl-C) gets
  ``--port P`` (a free port on 127.0.0.1), is polled until ``GET /health`` answers (and ``/ui/``
  with ``--html``), then gets SIGINT and must exit cleanly.
* a background command (``... &``) with ``--port N`` gets a free port instead, and so does every
  later ``127.0.0.1:N``; ``kill %1`` stops it. The vLLM server needs ``/opt/turngym-vllm`` (built by
  ``.ci/setup.d/vllm.sh``): without it, it and the commands that talk to it are skipped, saying so.
* ``turngym play`` reads ``:quit`` from stdin.

Not run: the install lines (this test runs in the environment they build, see ``.ci/run``;
``tests/unit/test_readme.py`` checks the extras they name), and ``pytest`` / ``bash .ci/run``, the
suites this test belongs to.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.readme import ROOT, commands, result_table, words

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHORT = [
    "iterations=2",
    "eval.every=1",
    "eval.episodes=8",
    "sft.demos=4",
    "sft.steps=2",
    "rollout.groups_per_iteration=2",
    "rollout.group_size=2",
    "optim.mini_batch_rows=4",
    "optim.micro_batch_rows=4",
]


def classify(args: list[str]) -> str | None:
    """How the test treats a README command (None: unknown, so the README test fails)."""
    if args[:3] == ["python3", "-m", "venv"] or args[:2] == ["pip", "install"]:
        return "install"
    if args == ["pytest"] or args == ["bash", ".ci/run"]:
        return "suite"
    if args[-1] == "&":
        return "background"
    if args == ["kill", "%1"]:
        return "stop"
    if args[:1] == ["until"]:
        return "wait"
    if args[:2] in (["turngym", "serve"], ["turngym", "view"]):
        return "server"
    if args[:2] == ["turngym", "train"]:
        return "train"
    if args[:2] == ["turngym", "play"]:
        return "play"
    if args[:1] == ["turngym"]:
        return "run"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Session:
    """The README's commands run one after another in one directory, as a user would."""

    work: Path
    env: dict[str, str]
    ports: dict[str, str] = field(default_factory=dict)
    """README port → the free port used instead."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """README port → why the background server behind it is not running."""
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """The running background commands; their output goes to ``logs`` (same order)."""
    logs: list[Path] = field(default_factory=list)

    def substitute(self, command: str) -> str:
        for old, new in self.ports.items():
            command = command.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        return command

    def run(self, command: str, *, timeout: float = 300, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["bash", "-c", command], cwd=self.work, env=self.env, input=stdin,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"{command!r} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        return done.stdout + done.stderr

    def wait(self, command: str, *, timeout: float = 300) -> None:
        """Run a waiting loop (``until ...; do ...; done``), failing as soon as a background server dies."""
        process = subprocess.Popen(
            ["bash", "-c", command], cwd=self.work, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None:
                dead = [k for k, p in enumerate(self.background) if p.poll() is not None]
                assert not dead, f"a background server exited:\n{self.logs[dead[0]].read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"{command!r} still waiting after {timeout:.0f} s"
                time.sleep(0.5)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        assert process.returncode == 0, f"{command!r} exited {process.returncode}"

    def serve(self, command: str) -> None:
        """Start a foreground server on a free port, check it answers, stop it like Ctrl-C."""
        port = free_port()
        log = self.work / f"server-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {command} --port {port}"], cwd=self.work, env=self.env,
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{url}/health", process, log, timeout=180)
            if "--html" in command:
                page = httpx.get(f"{url}/ui/", timeout=30)
                assert page.status_code == 200 and "<html" in page.text.lower()
        finally:
            os.killpg(process.pid, signal.SIGINT)
            code = process.wait(timeout=60)
        text = log.read_text()
        assert code == 0, f"{command!r} exited {code} on Ctrl-C:\n{text[-3000:]}"
        assert "Traceback" not in text, text[-3000:]
        if "--html" in command:
            assert f"http://127.0.0.1:{port}/ui/" in text  # the command says where the browser view is

    def start_background(self, command: str) -> str | None:
        """Start ``command &`` (its --port swapped for a free one); None, or why it cannot run."""
        args = words(command)[:-1]
        program = next(a for a in args if "=" not in a)
        port = args[args.index("--port") + 1] if "--port" in args else None
        if shutil.which(program) is None:
            reason = f"{program} is not installed" + (
                " (the vLLM venv: bash .ci/setup.d/vllm.sh builds it)" if "vllm" in program else ""
            )
            if port:
                self.unavailable[port] = reason
            return reason
        if port:
            self.ports[port] = str(free_port())
            args[args.index("--port") + 1] = self.ports[port]
        log = self.work / f"background-{len(self.logs)}.log"
        with log.open("wb") as sink:
            self.background.append(
                subprocess.Popen(
                    ["bash", "-c", shlex.join(args)],
                    cwd=self.work,
                    env=self.env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        self.logs.append(log)
        return None

    def stop_background(self) -> None:
        for process in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)
        self.background.clear()
        self.logs.clear()


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer within {timeout:.0f} s"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    work = tmp_path_factory.mktemp("fresh-checkout")
    shutil.copytree(ROOT / "examples", work / "examples")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "COLUMNS": "200"}
    env.pop("PYTHONPATH", None)
    state = Session(work, env)
    yield state
    state.stop_background()


COMMANDS = commands()


@pytest.mark.parametrize("command", COMMANDS, ids=[c[:70] for c in COMMANDS])
def test_readme_command(command: str, session: Session) -> None:
    kind = classify(words(command))
    if kind == "install":
        pytest.skip("install line: this test runs in the environment it builds (.ci/run)")
    if kind == "suite":
        pytest.skip("the test suite this test belongs to")
    missing = [why for port, why in session.unavailable.items() if f":{port}" in command]
    if missing or (kind == "stop" and not session.background and session.unavailable):
        pytest.skip(missing[0] if missing else next(iter(session.unavailable.values())))
    command = session.substitute(command)
    if kind == "background":
        reason = session.start_background(command)
        if reason:
            pytest.skip(reason)
    elif kind == "stop":
        session.stop_background()
    elif kind == "server":
        session.serve(command)
    elif kind == "wait":
        if "curl" in words(command) and shutil.which("curl") is None:
            session.stop_background()
            session.unavailable.update(
                {port: "curl is not installed (the wait for the server)" for port in session.ports}
            )
            pytest.skip("curl is not installed: the README waits for the server with it")
        session.wait(command)
    elif kind == "play":
        assert "stopped; return 0" in session.run(command, stdin=":quit\n")
    elif kind == "train":
        runs = session.work / "runs"
        before = set(runs.iterdir()) if runs.exists() else set()
        output = " ".join(session.run(command + "".join(f" --set {s}" for s in SHORT)).split())
        header, rows = result_table()
        assert all(label in output for label in header), (header, output)
        if "--resume" in command:
            assert "is finished" in output  # the run it names ended: nothing to do, nothing changed
            return
        chosen = re.search(r"credit\.estimator=(\w+)", command)
        estimator = chosen.group(1) if chosen else "gigpo"
        assert rows[0][0] in output and f"after 2 {estimator} iterations" in output, output
        if chosen and "-c" in words(command):  # the file's other parameters are dropped, saying so
            assert f"note: credit.estimator={estimator} does not take" in output, output
        created = set(runs.iterdir()) - before - {runs / "latest"}
        assert len(created) == 1, created  # a new run directory per run, and runs/latest names it
        assert (runs / "latest").resolve() == next(iter(created)).resolve()
    else:
        session.run(command, timeout=300)
