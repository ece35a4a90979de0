"""Grading a submission against a task's hidden tests, inside the sandbox.

The program sent to the sandbox is a fixed harness (``main.py``) plus two data files: the
submission (``solution.py``) and the task's test steps (``tests.json``). The harness

1. reads a random one-time token from stdin, loads ``tests.json`` and then deletes both data
   files and itself, so the submission can neither read nor change the tests or the token;
2. keeps a private copy of stdout's file descriptor and executes prelude + submission in a fresh
   namespace (module name ``__solution__``, so ``if __name__ == "__main__"`` blocks do not run);
3. binds ``candidate`` to the entry point and runs each step under a per-step alarm; after each
   *test* step it writes ``<token> <index> pass|fail`` to its private descriptor.

The reward is ``passed / total`` over the lines that carry the token, so a submission that exits
early, kills itself, forges output without the token or times out loses exactly the tests it did
not pass. (A submission can still inspect the harness's memory from inside the interpreter;
in-process tests cannot rule that out.) Tests are never shown to the agent: its ``python`` tool
runs in a separate, empty sandbox directory.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

from turngym.envs.code.tasks import CodeTask
from turngym.sandboxes.api import ExecResult, RunRequest, Sandbox

HARNESS = r"""import json, os, signal, sys, traceback
_token = sys.stdin.readline().strip()
with open("tests.json", encoding="utf-8") as _handle:
    _spec = json.load(_handle)
with open("solution.py", encoding="utf-8") as _handle:
    _solution = _handle.read()
for _name in ("tests.json", "solution.py", __file__):
    os.unlink(_name)
_out = os.dup(1)


class _StepTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _StepTimeout("step took longer than %s s" % _spec["step_timeout"])


def _report(index, ok):
    os.write(_out, ("%s %d %s\n" % (_token, index, "pass" if ok else "fail")).encode())


signal.signal(signal.SIGALRM, _alarm)
_namespace = {"__name__": "__solution__", "__builtins__": __builtins__}
_loaded = True
try:
    signal.setitimer(signal.ITIMER_REAL, _spec["step_timeout"])
    exec(compile(_spec["prelude"] + "\n" + _solution, "solution.py", "exec"), _namespace)
    signal.setitimer(signal.ITIMER_REAL, 0)
    if _spec["entry_point"] is not None:
        _namespace["candidate"] = _namespace[_spec["entry_point"]]
except BaseException:
    signal.setitimer(signal.ITIMER_REAL, 0)
    traceback.print_exc()
    _loaded = False
for _index, (_code, _is_test) in enumerate(_spec["steps"]):
    _ok = _loaded
    if _loaded:
        try:
            signal.setitimer(signal.ITIMER_REAL, _spec["step_timeout"])
            exec(compile(_code, "test", "exec"), _namespace)
        except BaseException:
            _ok = False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    if _is_test:
        _report(_index, _ok)
"""


@dataclass(frozen=True)
class Grade:
    """The outcome of grading one submission."""

    passed: int
    """Tests that passed."""
    total: int
    """Tests of the task."""
    result: ExecResult
    """The sandbox run of the harness (its stdout holds the report lines)."""

    @property
    def fraction(self) -> float:
        """``passed / total`` (0 for a task without tests)."""
        return self.passed / self.total if self.total else 0.0


def grading_request(
    task: CodeTask, submission: str, token: str, *, step_timeout_s: float = 3.0, memory_mb: int = 512
) -> RunRequest:
    """The sandbox request that grades ``submission`` on ``task`` (``token``: a fresh secret)."""
    spec = {
        "prelude": task.prelude,
        "entry_point": task.entry_point,
        "steps": [[step.code, step.is_test] for step in task.steps],
        "step_timeout": step_timeout_s,
    }
    total_timeout = min(120.0, step_timeout_s * (len(task.steps) + 1) + 2.0)
    return RunRequest(
        code=HARNESS,
        stdin=token + "\n",
        timeout_s=total_timeout,
        memory_mb=memory_mb,
        files={"solution.py": submission.encode(), "tests.json": json.dumps(spec).encode()},
    )


def count_passes(stdout: str, token: str, task: CodeTask) -> int:
    """Tests reported as passed on lines that carry ``token`` (each test index counted once)."""
    test_indices = {i for i, step in enumerate(task.steps) if step.is_test}
    pattern = re.compile(rf"^{re.escape(token)} (\d+) pass$", re.MULTILINE)
    return len({int(m.group(1)) for m in pattern.finditer(stdout)} & test_indices)


def grade(
    sandbox: Sandbox, task: CodeTask, submission: str, *, step_timeout_s: float = 3.0, memory_mb: int = 512
) -> Grade:
    """Run ``task``'s hidden tests on ``submission`` in ``sandbox``."""
    token = secrets.token_hex(16)
    request = grading_request(task, submission, token, step_timeout_s=step_timeout_s, memory_mb=memory_mb)
    result = sandbox.run_request(request)
    return Grade(count_passes(result.stdout, token, task), task.num_tests, result)
