"""KernelBench task files: the built-in set and the directory loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from turngym.envs.kernel.tasks import KernelTask, builtin_tasks, find_task, load_task_dir
from turngym.errors import ConfigError

TASK = (
    "import torch\nimport torch.nn as nn\n\nclass Model(nn.Module):\n    pass\n\n"
    "def get_inputs():\n    return []\n\ndef get_init_inputs():\n    return []\n"
)


def test_builtin_set_spans_three_levels_with_solutions() -> None:
    tasks = builtin_tasks()
    assert len(tasks) >= 24
    assert {t.level for t in tasks} == {1, 2, 3}
    assert all(t.solutions["cpp"] for t in tasks)
    assert sum(len(t.solutions["cpp"]) > 1 for t in tasks) >= 3  # refinement tasks
    assert sum("triton" in t.solutions for t in tasks) >= 3
    assert len({t.task_id for t in tasks}) == len(tasks)
    assert find_task(tasks, "Softmax").task_id == "8_Softmax"


def test_loader_reads_level_folders_in_number_order(tmp_path: Path) -> None:
    for rel in ("level1/10_B.py", "level1/2_A.py", "level2/1_C.py", "level2/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(TASK)
    tasks = load_task_dir(tmp_path)
    assert [(t.task_id, t.level) for t in tasks] == [("level1/2_A", 1), ("level1/10_B", 1), ("level2/1_C", 2)]
    assert [t.task_id for t in load_task_dir(tmp_path, levels=(2,))] == ["level2/1_C"]
    assert tasks[0].name == "A"


def test_flat_folder_is_level_one(tmp_path: Path) -> None:
    (tmp_path / "3_X.py").write_text(TASK)
    assert [(t.task_id, t.level) for t in load_task_dir(tmp_path)] == [("3_X", 1)]


def test_bad_task_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "1_Bad.py").write_text("class Model:\n    pass\n")
    with pytest.raises(ConfigError, match="missing get_inputs, get_init_inputs"):
        load_task_dir(tmp_path)
    with pytest.raises(ConfigError, match="not valid Python"):
        KernelTask("x", 1, "def (")
    with pytest.raises(ConfigError, match="does not exist"):
        load_task_dir(tmp_path / "nope")
    with pytest.raises(ConfigError, match="turngym kernel tasks"):
        find_task(builtin_tasks(), "NoSuchTask")
