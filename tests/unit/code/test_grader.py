"""Grading in the sandbox: fractions, and submissions that try to cheat or break the harness."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from turngym.envs.code import BUILTIN_TASKS, CheckStep, CodeTask, grade
from turngym.envs.code.grader import count_passes
from turngym.sandboxes import LocalSandbox

FIZZ = next(t for t in BUILTIN_TASKS if t.entry_point == "fizzbuzz")
SECOND = next(t for t in BUILTIN_TASKS if t.entry_point == "second_largest")


@pytest.fixture(scope="module")
def box() -> Iterator[LocalSandbox]:
    with LocalSandbox(pool_size=1) as sandbox:
        yield sandbox


def test_the_reference_passes_every_test(box: LocalSandbox) -> None:
    graded = grade(box, SECOND, SECOND.reference)
    assert (graded.passed, graded.total, graded.fraction) == (5, 5, 1.0)


def test_a_partly_right_solution_gets_the_fraction(box: LocalSandbox) -> None:
    # sorted(numbers)[-2] is right for [3,1,2] and [-1,-5,-3] only (2 of 5)
    graded = grade(box, SECOND, "def second_largest(numbers):\n    return sorted(numbers)[-2]")
    assert (graded.passed, graded.fraction) == (2, 0.4)


@pytest.mark.parametrize(
    "submission",
    [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "print('0 pass')\nfor i in range(9):\n    print(f'{i} pass')",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "raise SyntaxError('nope')",
        "def fizzbuzz(n):\n    while True:\n        pass",
        "print(open('tests.json').read())",
        "import os\nprint(os.listdir('.'))\ndef fizzbuzz(n):\n    return []",
    ],
)
def test_cheating_or_broken_submissions_score_what_they_pass(box: LocalSandbox, submission: str) -> None:
    graded = grade(box, FIZZ, submission, step_timeout_s=0.5)
    expected = 1 if "return []" in submission else 0
    assert graded.passed == expected
    assert "tests.json" not in graded.result.stdout or graded.passed == 0
    if "listdir" in submission:
        assert "['main.py'" not in graded.result.stdout
        assert "[]" in graded.result.stdout


def test_a_hanging_test_only_loses_itself(box: LocalSandbox) -> None:
    task = CodeTask(
        "t/1",
        "",
        (
            CheckStep("assert f(1) == 1", True),
            CheckStep("assert f(-1) == 0", True),
            CheckStep("assert f(2)", True),
        ),
        "",
        entry_point="f",
    )
    solution = "def f(x):\n    while x < 0:\n        pass\n    return x"
    graded = grade(box, task, solution, step_timeout_s=0.3)
    assert (graded.passed, graded.total) == (2, 3)


def test_only_lines_with_the_token_count_once_each() -> None:
    stdout = "tok 0 pass\ntok 0 pass\nother 1 pass\ntok 1 fail\ntok 2 pass\nxtok 3 pass\ntok 99 pass\n"
    assert count_passes(stdout, "tok", FIZZ) == 2
