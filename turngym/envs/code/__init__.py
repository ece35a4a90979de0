"""``turngym/Code-v0``: programming tasks with a sandboxed python tool and hidden unit tests."""

from turngym.envs.code.builtin_tasks import BUILTIN_TASKS
from turngym.envs.code.env import CodeEnv
from turngym.envs.code.grader import Grade, grade
from turngym.envs.code.tasks import CheckStep, CodeTask, load_humaneval, load_mbpp

__all__ = [
    "BUILTIN_TASKS",
    "CheckStep",
    "CodeEnv",
    "CodeTask",
    "Grade",
    "grade",
    "load_humaneval",
    "load_mbpp",
]
