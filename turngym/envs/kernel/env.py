"""``turngym/KernelGym-v0``: write a kernel for a PyTorch model, get evaluated, refine, up to a turn limit.

Each turn the agent answers with source defining ``ModelNew`` in a fenced ```` ```python ```` block
(the last block counts, as in Dr.Kernel). The env evaluates it (:mod:`evaluate`: compile,
correctness on fresh inputs, timing against eager PyTorch, hacking checks), rewards the turn with
the Dr.Kernel turn reward (:mod:`rewards`) and answers with the evaluation as JSON feedback in
KernelGYM's style. The episode ends (``terminated``) when a clean, correct kernel reaches
``target_speedup`` (Triton on CPU: when it is correct, its speed is not measured) or when the
``max_turns``-th answer has been evaluated; ``won`` says whether the last answer was correct and
clean. An answer without a code block is an invalid action.

Anchor: ``("start", None)`` before the first answer, then the feedback category (``correct``,
``incorrect``, ``compile_error``, ``runtime_error``, ``timeout``, ``crashed``, ``hacked``, or
``no_code``) and the speedup rounded to one decimal (``None`` when not measured).

Evaluations run in-process (a subprocess per answer) or on a ``turngym serve kernels`` server when
``server_url`` is set. Results are memoised per process by (task, answer, settings), so identical
answers in a group are evaluated once and the env stays deterministic for its checker although
timings are noisy. Expert: the task's reference solutions for the backend, one refinement stage per
turn (the last stage repeats).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.kernel.evaluate import EvalConfig, EvalResult, evaluate
from turngym.envs.kernel.rewards import RewardConfig, turn_reward
from turngym.envs.kernel.tasks import KernelTask, builtin_tasks, load_task_dir
from turngym.errors import ConfigError

LANGUAGE = {"cpp": "C++ CPU (torch.utils.cpp_extension.load_inline)", "triton": "Triton", "cuda": "CUDA"}

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)

_CACHE_LOCK = threading.Lock()
_CACHE: OrderedDict[str, EvalResult] = OrderedDict()
CACHE_SIZE = 1024


def extract_code(action: str) -> str | None:
    """The last fenced code block of an answer, or ``None``."""
    blocks = _FENCE.findall(action)
    return blocks[-1] if blocks else None


def fenced(code: str) -> str:
    """``code`` as the answer the env expects."""
    return f"```python\n{code.rstrip()}\n```"


def feedback_dict(result: EvalResult, reward: float) -> dict[str, Any]:
    """The fields shown to the agent after a turn."""
    out: dict[str, Any] = {
        "status": result.category,
        "compiled": result.compiled,
        "correctness": result.correct,
        "correctness_trials": f"({result.correctness_trials[0]} / {result.correctness_trials[1]})",
    }
    if result.max_difference is not None and not result.correct:
        out["max_difference"] = result.max_difference
    if result.speedup is not None:
        out["speedup"] = round(result.speedup, 3)
        out["reference_runtime_ms"] = round((result.reference_ms or {}).get("median", 0.0), 4)
        out["kernel_runtime_ms"] = round((result.kernel_ms or {}).get("median", 0.0), 4)
    elif result.correct:
        out["speedup"] = "not measured on this backend/device"
    if result.coverage is not None:
        out["time_coverage"] = round(result.coverage, 3)
    if result.hacks:
        out["reward_hacking"] = [f"{h.name}: {h.detail}" for h in result.hacks]
    if result.message:
        out["error"] = result.message
    out["reward"] = round(reward, 4)
    return out


class KernelGymEnv(TextEnv):
    """KernelBench tasks as a multi-turn kernel-writing environment."""

    description = "Write C++/Triton/CUDA kernels for PyTorch models, evaluated and refined over turns"
    requires = ("torch",)

    def __init__(
        self,
        *,
        tasks: str | Sequence[KernelTask] = "builtin",
        levels: Sequence[int] | None = None,
        backend: str = "cpp",
        max_turns: int = 3,
        target_speedup: float = 1.0,
        server_url: str | None = None,
        num_correct_trials: int = 3,
        num_perf_trials: int = 10,
        num_warmup: int = 2,
        timeout_s: float = 180.0,
        coverage_weight: float = 0.0,
        hack_penalty: float = -1.0,
        max_feedback_chars: int = 2048,
        cache_results: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_turns=max_turns, **kwargs)
        self.eval_config = EvalConfig(
            backend=backend,
            num_correct_trials=num_correct_trials,
            num_perf_trials=num_perf_trials,
            num_warmup=num_warmup,
            timeout_s=timeout_s,
        )
        self.reward_config = RewardConfig(coverage_weight=coverage_weight, hack_penalty=hack_penalty)
        self.tasks = self._load(tasks, levels, backend)
        self.backend = backend
        self.target_speedup = target_speedup
        self.max_feedback_chars = max_feedback_chars
        self.cache_results = cache_results
        self.server_url = server_url
        self._client = None
        if server_url is not None:
            from turngym.envs.kernel.client import KernelEvalClient

            self._client = KernelEvalClient(server_url)
        self._task = self.tasks[0]
        self._evaluated = 0
        self._anchor: tuple[str, float | None] = ("start", None)

    @staticmethod
    def _load(
        tasks: str | Sequence[KernelTask], levels: Sequence[int] | None, backend: str
    ) -> list[KernelTask]:
        if isinstance(tasks, str):
            if tasks == "builtin":
                loaded = list(builtin_tasks())
                if backend != "cpp":  # the built-in set has Triton and CUDA solutions for some tasks
                    loaded = [t for t in loaded if backend in t.solutions] or loaded
            else:
                loaded = load_task_dir(tasks)
        else:
            loaded = list(tasks)
        if levels is not None:
            loaded = [t for t in loaded if t.level in set(levels)]
        if not loaded:
            raise ConfigError(
                f"no kernel tasks in {tasks if isinstance(tasks, str) else 'the list'} for levels {levels}"
            )
        return loaded

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task(self) -> KernelTask:
        """The current task."""
        return self._task

    @property
    def system_prompt(self) -> str:
        return (
            f"You are an expert in writing fast {LANGUAGE[self.backend]} kernels for PyTorch models. "
            "Given a model named Model, write ModelNew: the same constructor and forward signature, the "
            "same results (within 1e-2), computed by your own kernels rather than PyTorch operators. "
            "Answer with the complete code in one ```python``` block."
        )

    def _reset(self, task_id: Any) -> str:
        index = int(task_id)
        if not 0 <= index < len(self.tasks):
            raise ValueError(f"task_id must be in 0..{len(self.tasks) - 1}, got {task_id!r}")
        self._task = self.tasks[index]
        self._evaluated = 0
        self._anchor = ("start", None)
        return (
            f"Task {self._task.task_id} (level {self._task.level}).\n\n"
            f"Here is a PyTorch model:\n\n{fenced(self._task.reference)}\n\n"
            f"Replace its operators with custom {LANGUAGE[self.backend]} kernels to make it faster. Name "
            "the new architecture ModelNew; keep the constructor arguments and the forward inputs and "
            "outputs. Do not call PyTorch compute operators, fall back to them, or game the timing: "
            f"such answers are penalised. You have {self.max_turns} attempts; after each one the "
            "evaluation server reports compilation, correctness, speedup and any problems. Answer with the "
            "complete code in a single ```python``` block."
        )

    def _evaluate(self, code: str) -> EvalResult:
        key = hashlib.sha256(
            json.dumps([self._task.reference, code, asdict(self.eval_config), self.server_url]).encode()
        ).hexdigest()
        if self.cache_results:
            with _CACHE_LOCK:
                if key in _CACHE:
                    _CACHE.move_to_end(key)
                    return _CACHE[key]
        if self._client is not None:
            result = self._client.evaluate(self._task.reference, code, self.eval_config)
        else:
            result = evaluate(self._task.reference, code, self.eval_config)
        if self.cache_results and result.status not in ("timeout", "crashed"):
            with _CACHE_LOCK:
                _CACHE[key] = result
                while len(_CACHE) > CACHE_SIZE:
                    _CACHE.popitem(last=False)
        return result

    def _step(self, action: str) -> StepOutcome:
        code = extract_code(action)
        if code is None:
            self._anchor = ("no_code", None)
            return StepOutcome(
                "Invalid answer: no ```python``` code block found. Answer with the complete ModelNew code "
                "in one fenced block.",
                invalid_action=True,
                parse_error=True,
            )
        result = self._evaluate(code)
        self._evaluated += 1
        reward = turn_reward(result, self.reward_config)
        clean = result.correct and not result.hacks
        fast = result.speedup is None or result.speedup >= self.target_speedup
        terminated = (clean and fast) or self._turns >= self.max_turns
        speed = None if result.speedup is None else round(result.speedup, 1)
        self._anchor = (result.category, speed)
        return StepOutcome(
            self._feedback(result, reward, terminated),
            reward=reward,
            terminated=terminated,
            won=clean,
            metrics={
                "compiled": float(result.compiled),
                "correct": float(result.correct),
                "hacked": float(bool(result.hacks)),
                "speedup": float(result.speedup or 0.0),
                "coverage": float(result.coverage if result.coverage is not None else 0.0),
                "eval_s": result.wall_s,
            },
        )

    def _feedback(self, result: EvalResult, reward: float, terminated: bool) -> str:
        body = json.dumps(feedback_dict(result, reward), indent=2)
        if len(body) > self.max_feedback_chars:
            body = body[: self.max_feedback_chars] + "\n...(truncated)"
        head = "Evaluation server feedback for your last implementation (status, metrics, errors):"
        if terminated:
            return f"{head}\n{body}\n\nThe episode is over."
        return (
            f"{head}\n{body}\n\nUse this feedback and your previous attempts to improve the implementation. "
            "Return the improved ModelNew as a single ```python``` block."
        )

    def anchor(self) -> Hashable:
        """(feedback category, speedup rounded to 0.1 or None); ``("start", None)`` before any answer."""
        return self._anchor

    def expert_action(self) -> str:
        """The reference solution for this backend, one refinement stage per evaluated answer."""
        stages = self._task.solutions.get(self.backend)
        if not stages:
            raise NotImplementedError(
                f"task {self._task.task_id} has no reference {self.backend} solution (loaded tasks have none)"
            )
        return fenced(stages[min(self._evaluated, len(stages) - 1)])

    def random_action(self, rng: np.random.Generator) -> str:
        """Cheap wrong answers (no code, a syntax error, no ModelNew): none of them starts a process."""
        kind = int(rng.integers(3))
        if kind == 0:
            return "I would write a kernel here."
        if kind == 1:
            return fenced("class ModelNew(nn.Module:\n    pass")
        return fenced(f"x = {int(rng.integers(1000))}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        super().close()
