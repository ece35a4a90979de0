"""The toy envs: golden texts for fixed seeds, experts that always win, invalid actions, the calculator."""

from __future__ import annotations

import numpy as np
import pytest

import turngym
from turngym.agents.baselines import run_episode, summarize
from turngym.envs.toy.calculator import CalculatorEnv, calculator
from turngym.envs.toy.maze import MazeEnv
from turngym.errors import ResetNeeded

MAZE_TASK_0 = "You are in the study. Exits: east. The treasure is 2 rooms east."
CALC_TASK_0 = (
    "Iris has 560 beads. Then Iris buys 4 boxes with 18 beads in each box. Then Iris buys 7 boxes "
    "with 82 beads in each box. How many beads does Iris have now?"
)


# ---- maze ---------------------------------------------------------------------------------------
def test_maze_golden_reset_and_info() -> None:
    env = MazeEnv()
    obs, info = env.reset(seed=0, options={"task_id": 0})
    assert obs == MAZE_TASK_0
    assert info == {
        "task_id": 0,
        "won": False,
        "anchor": (0, "study"),
        "admissible_actions": ["go east"],
        "invalid_action": False,
        "metrics": {"turns": 0.0, "invalid_actions": 0.0, "parse_failures": 0.0},
    }


def test_maze_task_fixes_the_layout_whatever_the_seed() -> None:
    env = MazeEnv()
    assert env.reset(seed=123, options={"task_id": 0})[0] == MAZE_TASK_0
    assert env.reset(seed=0, options={"task_id": 7})[0] == (
        "You are in the hall. Exits: south, east. The treasure is 2 rooms south."
    )


def test_maze_task_drawn_from_the_seed_when_not_given() -> None:
    env = MazeEnv()
    _, info = env.reset(seed=5)
    assert info["task_id"] == 670
    assert MazeEnv().reset(seed=5)[1]["task_id"] == 670


def test_maze_size_and_split_change_the_task() -> None:
    obs, _ = MazeEnv(size=4, split="test").reset(seed=0, options={"task_id": 0})
    assert obs == "You are in the office. Exits: west. The treasure is 1 room north and 2 rooms west."


def test_maze_golden_expert_episode() -> None:
    env = MazeEnv()
    env.reset(seed=0, options={"task_id": 0})
    played = []
    for _ in range(4):
        action = env.expert_action()
        obs, reward, terminated, truncated, info = env.step(action)
        played.append((action, obs, reward, terminated, info["anchor"]))
    assert played == [
        ("go east", "You are in the pantry. Exits: north, south, west. The treasure is 1 room east.",
         0.0, False, (0, "pantry")),
        ("go south", "You are in the garden. Exits: north, west, east. The treasure is 1 room north and "
         "1 room east.", 0.0, False, (0, "garden")),
        ("go east", "You are in the gallery. Exits: north, west. The treasure is 1 room north.",
         0.0, False, (0, "gallery")),
        ("go north", "You are in the cellar. You found the treasure!", 1.0, True, (0, "cellar")),
    ]  # fmt: skip
    assert info["won"] is True and truncated is False
    with pytest.raises(ResetNeeded):
        env.step("go east")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("go west", "You can't go west from here."),
        ("dance", "I don't understand 'dance'; say 'go <direction>'."),
        ("go", "I don't understand 'go'"),
        ("go north east", "I don't understand"),
        ("", "I don't understand ''"),
        ("🚀" * 1000, "I don't understand '" + "🚀" * 80 + "'"),
    ],
)
def test_maze_invalid_actions_are_observations(action: str, message: str) -> None:
    env = MazeEnv()
    env.reset(seed=0, options={"task_id": 0})
    obs, reward, terminated, truncated, info = env.step(action)
    assert message in obs
    assert obs.endswith(MAZE_TASK_0)  # the room is described again
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["invalid_action"] is True and info["metrics"]["invalid_actions"] == 1.0
    assert info["anchor"] == (0, "study")  # the state did not change, though the text did


@pytest.mark.parametrize("action", ["east", "GO EAST", "  go east.  "])
def test_maze_accepts_lenient_spellings(action: str) -> None:
    env = MazeEnv()
    env.reset(seed=0, options={"task_id": 0})
    assert env.step(action)[4]["invalid_action"] is False


def test_maze_truncates_after_max_turns() -> None:
    env = MazeEnv(max_turns=3)
    env.reset(seed=0, options={"task_id": 0})
    results = [env.step("dance") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert results[-1][4]["metrics"]["turns"] == 3.0


def test_maze_revisited_states_share_an_anchor() -> None:
    env = MazeEnv()
    _, first = env.reset(seed=0, options={"task_id": 0})
    env.step("go east")
    _, _, _, _, back = env.step("go west")
    assert back["anchor"] == first["anchor"]


@pytest.mark.parametrize("size", [2, 3, 5])
def test_maze_expert_always_wins_on_a_shortest_path(size: int) -> None:
    env = MazeEnv(size=size, max_turns=4 * size * size)
    episodes = [run_episode(env, "turngym/Maze-v0", "expert", seed=s, task_id=s) for s in range(60)]
    assert summarize(episodes).success_rate == 1.0
    assert all(len(t.turns) <= size * size - 1 for t in episodes)
    assert all(not turn.info["invalid_action"] for t in episodes for turn in t.turns)


def test_maze_random_agent_is_worse_than_the_expert() -> None:
    env = MazeEnv(size=5)
    episodes = [run_episode(env, "turngym/Maze-v0", "random", seed=s, task_id=s) for s in range(40)]
    assert summarize(episodes).success_rate < 1.0


@pytest.mark.parametrize(("kwargs", "message"), [({"size": 6}, "size must be between 2 and 5"),
                                                 ({"split": "dev"}, "split must be one of")])  # fmt: skip
def test_maze_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MazeEnv(**kwargs)  # type: ignore[arg-type]


# ---- calculator ---------------------------------------------------------------------------------
def calc_call(expression: str) -> str:
    return f'<tool_call>{{"name": "calculator", "arguments": {{"expression": "{expression}"}}}}</tool_call>'


def test_calculator_golden_reset_and_expert_episode() -> None:
    env = CalculatorEnv()
    obs, info = env.reset(seed=0, options={"task_id": 0})
    assert obs == CALC_TASK_0
    assert env.problem.expression == "560 + 4 * 18 + 7 * 82"
    assert env.problem.answer == 1206
    assert env.expert_action() == calc_call("560 + 4 * 18 + 7 * 82")
    obs, reward, terminated, _, info = env.step(env.expert_action())
    assert (obs, reward, terminated) == ("Result: 1206", 0.0, False)
    assert info["metrics"]["tool_calls"] == 1.0
    assert env.expert_action() == "<answer>1206</answer>"
    obs, reward, terminated, _, info = env.step("<answer>1,206</answer>")
    assert (obs, reward, terminated, info["won"]) == ("Correct!", 1.0, True, True)


def test_calculator_wrong_answer_terminates_without_reward() -> None:
    env = CalculatorEnv()
    env.reset(seed=0, options={"task_id": 0})
    env.step(calc_call("1 + 1"))
    obs, reward, terminated, _, info = env.step("<answer>2</answer>")
    assert (obs, reward, terminated, info["won"]) == ("Wrong: the answer was 1206.", 0.0, True, False)


@pytest.mark.parametrize(
    ("action", "message", "parse_failure"),
    [
        ("<answer>1206</answer>", "Use the calculator tool at least once before answering.", 0.0),
        ("the answer is 1206", "Invalid action: no tool call or answer found.", 1.0),
        ("<tool_call>{oops}</tool_call>", "Invalid action: tool call is not valid JSON", 1.0),
        ('<tool_call>{"name": "calculator"', "Invalid action: unclosed <tool_call>", 1.0),
        ('<tool_call>{"name": "wolfram", "arguments": {}}</tool_call>',
         "Invalid tool call: no tool named 'wolfram'", 0.0),
        ('<tool_call>{"name": "calculator", "arguments": {"expr": "1"}}</tool_call>',
         "Invalid tool call: bad arguments for tool 'calculator': expression: Field required", 0.0),
    ],
)  # fmt: skip
def test_calculator_invalid_actions(action: str, message: str, parse_failure: float) -> None:
    env = CalculatorEnv()
    env.reset(seed=0, options={"task_id": 0})
    obs, reward, terminated, truncated, info = env.step(action)
    assert obs.startswith(message), obs
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["invalid_action"] is True
    assert info["metrics"]["parse_failures"] == parse_failure


def test_calculator_tool_error_is_shown_and_is_not_invalid() -> None:
    env = CalculatorEnv()
    env.reset(seed=0, options={"task_id": 0})
    obs, _, _, _, info = env.step(calc_call("1 / 0"))
    assert obs == "Error: ZeroDivisionError: division by zero"
    assert info["invalid_action"] is False


def test_calculator_expert_always_wins_and_random_does_not() -> None:
    env = CalculatorEnv()
    expert = [run_episode(env, "turngym/Calculator-v0", "expert", seed=s, task_id=s) for s in range(50)]
    assert summarize(expert).success_rate == 1.0
    assert all(len(t.turns) == 2 for t in expert)
    randoms = [run_episode(env, "turngym/Calculator-v0", "random", seed=s, task_id=s) for s in range(50)]
    assert summarize(randoms).success_rate < 0.5


def test_calculator_random_action_is_reproducible() -> None:
    env = CalculatorEnv()
    env.reset(seed=0, options={"task_id": 3})
    first = [env.random_action(np.random.default_rng(9)) for _ in range(3)]
    assert first == [env.random_action(np.random.default_rng(9)) for _ in range(3)]


@pytest.mark.parametrize(
    ("expression", "value"),
    [("(1+2)*3", "9"), ("-5 // 2", "-3"), ("7 % 3", "1"), ("10 / 4", "2.5"), ("10 / 5", "2"),
     ("-" * 99 + "1", "-1"), (" 2 * (3 + 4) ", "14"), ("999999999999999999", "999999999999999999")],
)  # fmt: skip
def test_calculator_evaluates_arithmetic(expression: str, value: str) -> None:
    assert calculator(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('echo pwned')", "unsupported syntax"),
        ("__import__('os')", "unsupported syntax"),
        ("9**9**9", "unsupported syntax: '9 \\*\\* 9 \\*\\* 9'"),
        ("2 ** 10", "unsupported syntax"),
        ("().__class__.__bases__[0].__subclasses__()", "unsupported syntax"),
        ("open('/etc/passwd').read()", "unsupported syntax"),
        ("lambda: 1", "unsupported syntax"),
        ("x", "unsupported syntax: 'x'"),
        ("'a' * 3", "unsupported syntax"),
        ("True + 1", "unsupported syntax: 'True'"),
        ("1j", "unsupported syntax"),
        ("[1] * 10**9", "unsupported syntax"),
        ("9" * 20, "number magnitude over 1e\\+18"),
        ("1e999", "number magnitude over 1e\\+18"),
        ("999999999 * 999999999 * 999999999", "result magnitude over 1e\\+18"),
        ("1e17 * 1e17", "result magnitude over 1e\\+18"),
        ("1 +", "not an arithmetic expression"),
        ("1" * 501, "expression is longer than 500 characters"),
        ("(" * 201 + "1" + ")" * 201, "not an arithmetic expression: too many nested parentheses"),
    ],
)
def test_calculator_rejects_hostile_input(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calculator(expression)


def test_calculator_hostile_input_through_the_env_is_a_tool_error() -> None:
    env = turngym.make("turngym/Calculator-v0")
    env.reset(seed=0, options={"task_id": 0})
    obs, _, terminated, _, info = env.step(calc_call("__import__('os').getcwd()"))
    assert obs.startswith("Error: ValueError: unsupported syntax")
    assert not terminated and info["invalid_action"] is False


@pytest.mark.parametrize("env_class", [MazeEnv, CalculatorEnv])
@pytest.mark.parametrize("task_id", [-1, "3", 2.0, True])
def test_bad_task_ids_are_refused_clearly(env_class: type, task_id: object) -> None:
    with pytest.raises(ValueError, match=f"task_id must be a non-negative integer, got {task_id!r}"):
        env_class().reset(seed=0, options={"task_id": task_id})


@pytest.mark.parametrize("env_class", [MazeEnv, CalculatorEnv])
def test_task_ids_past_the_split_size_and_numpy_ints_work(env_class: type) -> None:
    env = env_class(tasks=10)
    assert env.reset(options={"task_id": np.int64(4)})[0] == env_class().reset(options={"task_id": 4})[0]
    assert env.reset(options={"task_id": 25})[1]["task_id"] == 25
