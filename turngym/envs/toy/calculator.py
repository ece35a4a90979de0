"""``turngym/Calculator-v0``: arithmetic word problems solved with a ``calculator`` tool.

Task ``k`` of a split is a word problem drawn from a generator seeded by ``(split, k)``: a starting
quantity changed by two or three operations (buying boxes, giving away, sharing equally), with
operands large enough that mental arithmetic is unreliable. The agent acts in the Hermes format:

* ``<tool_call>{"name": "calculator", "arguments": {"expression": "37 + 4 * 12"}}</tool_call>``
  → observation ``Result: 85`` (or the tool's error). The tool goes through
  :class:`~turngym.tools.Toolbox`: in-process by default, or a tool server given ``tool_url``.
* ``<answer>85</answer>`` → reward 1.0 and ``won`` if the number equals the true answer, else 0.0;
  either way the episode terminates. Answering before any calculator call is refused (invalid
  action): the task is about using the tool.

Anything else (no call, malformed JSON, an unknown tool, bad arguments) is an invalid action whose
observation says what was wrong; malformed calls count in ``metrics['parse_failures']``.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.toy import task_index
from turngym.errors import ToolArgumentError, ToolNotFound
from turngym.tools import Tool, Toolbox, parse_tool_calls

SPLITS = {"train": 0, "test": 1_000_003}
_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_MAX_EXPRESSION_CHARS = 500
_MAX_MAGNITUDE = 10**18


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if abs(node.value) > _MAX_MAGNITUDE:
            raise ValueError(f"number magnitude over {_MAX_MAGNITUDE:.0e}")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        value = _BINOPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
        if abs(value) > _MAX_MAGNITUDE:
            raise ValueError(f"result magnitude over {_MAX_MAGNITUDE:.0e}")
        return value
    raise ValueError(f"unsupported syntax: {ast.unparse(node)[:60]!r}; use numbers, + - * / // % and ()")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with + - * / // % and parentheses."""
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression is longer than {_MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from None
    value = _evaluate(tree.body)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


CALCULATOR = Tool.from_function(calculator)


@dataclass(frozen=True)
class Problem:
    """One word problem: its text, the expression that solves it and the answer."""

    text: str
    expression: str
    answer: int


_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas")
_ITEMS = ("apples", "stickers", "marbles", "coins", "stamps", "beads", "cards", "shells")


def make_problem(rng: np.random.Generator) -> Problem:
    """A word problem with 2 or 3 operations whose answer is a positive integer."""
    name = _NAMES[int(rng.integers(len(_NAMES)))]
    item = _ITEMS[int(rng.integers(len(_ITEMS)))]
    total = int(rng.integers(100, 1000))
    expression = str(total)
    sentences = [f"{name} has {total} {item}."]
    for _ in range(int(rng.integers(2, 4))):
        kind = int(rng.integers(3))
        if kind == 0:
            boxes, per_box = int(rng.integers(3, 30)), int(rng.integers(12, 99))
            total += boxes * per_box
            expression = f"{expression} + {boxes} * {per_box}"
            sentences.append(f"Then {name} buys {boxes} boxes with {per_box} {item} in each box.")
        elif kind == 1 and total > 50:
            given = int(rng.integers(1, total // 2))
            total -= given
            expression = f"{expression} - {given}"
            sentences.append(f"Then {name} gives away {given} {item}.")
        else:
            bag = int(rng.integers(3, 12))
            total -= total % bag
            expression = f"({expression}) // {bag} * {bag}"
            sentences.append(f"Then {name} packs the {item} into bags of {bag} and throws away the rest.")
    question = f"How many {item} does {name} have now?"
    return Problem(" ".join([*sentences, question]), expression, total)


_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


class CalculatorEnv(TextEnv):
    """Solve an arithmetic word problem with a calculator tool, then answer."""

    description = "Arithmetic word problems solved by calling a calculator tool (toy tool use)"

    def __init__(
        self,
        *,
        split: str = "train",
        tasks: int = 1000,
        max_turns: int = 6,
        tool_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        super().__init__(max_turns=max_turns, **kwargs)
        self.split, self._tasks = split, tasks
        self.toolbox = Toolbox([CALCULATOR], url=tool_url)
        self._problem = Problem("", "0", 0)
        self._calls = 0
        self._last_result: str | None = None

    @property
    def num_tasks(self) -> int:
        return self._tasks

    @property
    def system_prompt(self) -> str:
        return (
            "Solve the word problem. Call the calculator tool with "
            '<tool_call>{"name": "calculator", "arguments": {"expression": "..."}}</tool_call> '
            "and, once you know the result, reply <answer>NUMBER</answer>."
        )

    @property
    def problem(self) -> Problem:
        """The current task's problem."""
        return self._problem

    def _reset(self, task_id: Any) -> str:
        self._problem = make_problem(np.random.default_rng([SPLITS[self.split], task_index(task_id)]))
        self._calls = 0
        self._last_result = None
        return self._problem.text

    def _step(self, action: str) -> StepOutcome:
        answer = _ANSWER_RE.search(action)
        if answer is not None and "<tool_call>" not in action:
            return self._answer(answer.group(1).strip())
        parsed = parse_tool_calls(action, "hermes")
        if not parsed.ok:
            reason = parsed.errors[0].message if parsed.errors else "no tool call or answer found"
            return StepOutcome(
                f"Invalid action: {reason}. Call the calculator or reply <answer>NUMBER</answer>.",
                invalid_action=True,
                parse_error=True,
            )
        call = parsed.calls[0]
        try:
            result = self.toolbox.call(call.name, call.arguments)
        except (ToolNotFound, ToolArgumentError) as exc:
            return StepOutcome(f"Invalid tool call: {exc}", invalid_action=True)
        self._calls += 1
        self._last_result = result.as_text()
        return StepOutcome(
            f"Result: {self._last_result}" if result.ok else self._last_result,
            metrics={"tool_calls": float(self._calls)},
        )

    def _answer(self, text: str) -> StepOutcome:
        if self._calls == 0:
            return StepOutcome("Use the calculator tool at least once before answering.", invalid_action=True)
        try:
            value = float(text.replace(",", ""))
        except ValueError:
            return StepOutcome(f"The answer must be a number, got {text[:40]!r}.", terminated=True)
        won = value == self._problem.answer
        return StepOutcome(
            "Correct!" if won else f"Wrong: the answer was {self._problem.answer}.",
            reward=float(won),
            terminated=True,
            won=won,
        )

    def expert_action(self) -> str:
        """Compute the problem's expression with the tool, then answer with the result."""
        if self._last_result is None:
            arguments = f'{{"expression": "{self._problem.expression}"}}'
            return f'<tool_call>{{"name": "calculator", "arguments": {arguments}}}</tool_call>'
        return f"<answer>{self._last_result}</answer>"

    def random_action(self, rng: np.random.Generator) -> str:
        """A calculator call on two random numbers of the problem, or one of the numbers seen as answer."""
        numbers = re.findall(r"\d+", self._problem.expression)
        if self._calls == 0 or rng.random() < 0.5:
            a, b = (numbers[int(i)] for i in rng.integers(len(numbers), size=2))
            op = "+-*"[int(rng.integers(3))]
            arguments = f'{{"expression": "{a} {op} {b}"}}'
            return f'<tool_call>{{"name": "calculator", "arguments": {arguments}}}</tool_call>'
        seen = [*numbers, *re.findall(r"-?\d+", self._last_result or "")]
        return f"<answer>{seen[int(rng.integers(len(seen)))]}</answer>"

    def close(self) -> None:
        self.toolbox.close()
        super().close()
