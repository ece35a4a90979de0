"""``turngym/KernelGym-v0``: KernelBench-format kernel tasks, an isolated evaluator with reward-hacking
checks, Dr.Kernel's turn rewards and an evaluation server (see docs/kernel.md).

Importing this package does not import torch; the evaluator's child process does.
"""

from turngym.envs.kernel.evaluate import EvalConfig, EvalResult, evaluate
from turngym.envs.kernel.hacks import HACK_NAMES, HackFinding, static_findings
from turngym.envs.kernel.rewards import RewardConfig, prs_keep_mask, prs_keep_probability, turn_reward
from turngym.envs.kernel.tasks import KernelTask, builtin_tasks, load_task_dir, load_task_file

__all__ = [
    "HACK_NAMES",
    "EvalConfig",
    "EvalResult",
    "HackFinding",
    "KernelTask",
    "RewardConfig",
    "builtin_tasks",
    "evaluate",
    "load_task_dir",
    "load_task_file",
    "prs_keep_mask",
    "prs_keep_probability",
    "static_findings",
    "turn_reward",
]
