"""The agent loop against the real chat templates of the model families people train.

Each fixture in ``chat_templates/`` holds one model's published ``chat_template`` (its source named
in ``template_source``), its special tokens and what the loop should find (``expect``). No hub
downloads are possible here, so each family's tokenizer is the tiny model's byte-level BPE with that
family's special tokens added and the real template set: the template's text, control tokens and
branching are the real ones, only the ids of ordinary text differ.

For every family: the probe finds the pieces, the first prompt equals the template's rendering, the
sampled tokens are the trained tokens (a Calculator episode with reasoning, a tool call, a reply
without a call and the answer), plain conversations are what the template renders at every step
where the template is append-only, tool results take the template's tool role where it has one
(JSON-escaped where it quotes them), ``chat_template_kwargs`` reach the template, and
``turngym template-check`` reports the rest.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from turngym.agents.chat import ChatFormat, call_id, messages_for
from turngym.agents.loop import run_batch
from turngym.agents.policy import LoopConfig, SamplingParams
from turngym.agents.scripted import ScriptedPolicy
from turngym.agents.template_check import check_template, scripted_replies
from turngym.cli import app
from turngym.envs import make
from turngym.trajectory import Trajectory

CALC, MAZE = "turngym/Calculator-v0", "turngym/Maze-v0"
FIXTURES = Path(__file__).parent / "chat_templates"
FAMILIES = sorted(p.stem for p in FIXTURES.glob("*.json"))
APPEND_ONLY = {"mistral-nemo": False}
"""Plain conversations (no reasoning, no tools) render append-only, except where listed: Mistral Nemo
writes the system prompt into the *last* user turn, so each step's rendering moves it."""


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def family_tokenizer(tiny_tokenizer: Any, name: str) -> Any:
    """The tiny tokenizer with family ``name``'s special tokens, bos/eos/pad and chat template."""
    data = fixture(name)
    tokenizer = copy.deepcopy(tiny_tokenizer)
    specials: dict[str, Any] = {"additional_special_tokens": data["special_tokens"]}
    specials.update({k: data[k] for k in ("bos_token", "eos_token", "pad_token") if data[k]})
    tokenizer.add_special_tokens(specials, replace_extra_special_tokens=False)
    tokenizer.add_tokens(data["added_tokens"])
    tokenizer.bos_token = data["bos_token"]
    tokenizer.chat_template = data["chat_template"]
    return tokenizer


def ending_turns_with(tokenizer: Any, token: str) -> Any:
    """A copy whose eos is ``token``: a scripted policy on it ends replies as the model does
    (generation configs list the end-of-turn token, e.g. Phi-3.5's ``<|end|>``, among the eos ids)."""
    out = copy.deepcopy(tokenizer)
    out.eos_token = token
    return out


@pytest.fixture(scope="module")
def tokenizers(tiny_tokenizer: Any) -> dict[str, Any]:
    return {name: family_tokenizer(tiny_tokenizer, name) for name in FAMILIES}


def test_every_fixture_names_its_source() -> None:
    assert len(FAMILIES) == 11
    for name in FAMILIES:
        data = fixture(name)
        source = data["template_source"]
        assert source["repo"] and source["path"] and len(source["commit"]) == 40
        assert "{%" in data["chat_template"] and data["expect"]["end_of_turn"]


@pytest.mark.parametrize("name", FAMILIES)
def test_probe_finds_the_pieces(tokenizers: dict[str, Any], name: str) -> None:
    tokenizer, expect = tokenizers[name], fixture(name)["expect"]
    env = make(CALC)
    fmt = ChatFormat.probe(tokenizer, env.system_prompt, env.toolbox.schemas())
    assert fmt.system_in_user == (expect["system"] == "folded")
    assert tokenizer.convert_tokens_to_ids(expect["end_of_turn"]) in fmt.eos_ids
    assert (fmt.tool.quoting if fmt.tool else None) == expect["tool_role"]
    obs = "What is 3 * 4?"
    messages = messages_for(env.system_prompt, obs, fmt.system_in_user)
    rendered = tokenizer.apply_chat_template(
        messages, tools=env.toolbox.schemas(), tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.decode(fmt.first_prompt(obs)) == rendered
    assert env.system_prompt in rendered
    env.close()


def _play(tokenizer: Any, name: str, env_id: str, replies: list[str], **loop: Any) -> tuple[Trajectory, list]:
    """One episode with scripted replies that end as the model ends its turns; the prompts it saw."""
    prompts: list[list[int]] = []
    policy_tokenizer = ending_turns_with(tokenizer, fixture(name)["expect"]["end_of_turn"])

    def reply(prompt: Any) -> str:
        prompts.append(list(prompt))
        return replies[(len(prompts) - 1) % len(replies)]

    config = LoopConfig(sampling=SamplingParams(max_new_tokens=300), env_id=env_id, **loop)
    (traj,) = run_batch(
        lambda: make(env_id), ScriptedPolicy(policy_tokenizer, reply), tokenizer, [(3, 0)], config
    )
    return traj, prompts


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("context", ["full", "window:2"])
def test_sampled_tokens_are_the_trained_tokens(tokenizers: dict[str, Any], name: str, context: str) -> None:
    tokenizer = tokenizers[name]
    env = make(CALC)
    env.reset(seed=0, options={"task_id": 3})
    replies = scripted_replies(env.problem.expression, env.problem.answer)
    env.close()
    traj, prompts = _play(tokenizer, name, CALC, replies, context=context)
    assert traj.won and len(traj.turns) == 3
    end = tokenizer.convert_tokens_to_ids(fixture(name)["expect"]["end_of_turn"])
    for t, turn in enumerate(traj.turns):
        sampled = [*tokenizer.encode(replies[t], add_special_tokens=False), end]
        assert list(turn.action_ids) == sampled
        if context == "full":
            history = [i for past in traj.turns[:t] for i in (*past.prompt_ids, *past.action_ids)]
            assert prompts[t] == history + list(turn.prompt_ids)  # appended, never re-tokenized
        else:
            assert prompts[t] == list(turn.prompt_ids)
    ids, mask = traj.token_ids, traj.loss_mask
    assert [i for i, m in zip(ids, mask, strict=True) if m] == [i for t in traj.turns for i in t.action_ids]
    text = tokenizer.decode(list(ids))
    assert "I should compute" in text  # the sampled reasoning is trained on, whatever the template drops
    assert text.count(fixture(name)["expect"]["end_of_turn"] * 2) == 0  # no turn is closed twice


@pytest.mark.parametrize("name", FAMILIES)
def test_plain_conversations_are_what_the_template_renders_at_every_step(
    tokenizers: dict[str, Any], name: str
) -> None:
    tokenizer = tokenizers[name]
    traj, prompts = _play(tokenizer, name, MAZE, ["go north", "go east", "look"])
    fmt = ChatFormat.probe(tokenizer, make(MAZE).system_prompt)
    messages = messages_for(fmt.system, traj.turns[0].observation, fmt.system_in_user)
    same = []
    for t, turn in enumerate(traj.turns):
        if t:
            messages += [
                {"role": "assistant", "content": traj.turns[t - 1].action},
                {"role": "user", "content": turn.observation},
            ]
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        same.append(tokenizer.decode(prompts[t]) == rendered)
    assert all(same) == APPEND_ONLY.get(name, True), same
    assert same[0]  # the first prompt is always the template's own


@pytest.mark.parametrize("name", [n for n in FAMILIES if fixture(n)["expect"]["tool_role"]])
def test_tool_results_take_the_templates_tool_role(tokenizers: dict[str, Any], name: str) -> None:
    tokenizer = tokenizers[name]
    schemas = make(CALC).toolbox.schemas()
    fmt = ChatFormat.probe(tokenizer, "Use the tools.", schemas)
    action = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2 + 3"}}\n</tool_call>'
    end = tokenizer.convert_tokens_to_ids(fixture(name)["expect"]["end_of_turn"])
    action_ids = [*tokenizer.encode(action, add_special_tokens=False), end]
    observation = 'Result: 5\nthe tool says "done" \\ ok'  # a newline, quotes and a backslash
    sequence = fmt.first_prompt("Add 2 and 3.") + action_ids + fmt.continuation(observation, action_ids)
    messages = [
        *messages_for("Use the tools.", "Add 2 and 3."),
        {"role": "assistant", "content": action},
        {"role": "tool", "tool_call_id": call_id(0), "content": observation},
    ]
    rendered = tokenizer.apply_chat_template(
        messages, tools=schemas, tokenize=False, add_generation_prompt=True
    )
    if APPEND_ONLY.get(name, True):
        assert tokenizer.decode(sequence) == rendered
    else:  # Mistral Nemo: the tool result is rendered the same way, the system prompt moves
        tail = rendered[rendered.index("[TOOL_RESULTS]") :]
        assert tokenizer.decode(sequence).endswith(tail)
    assert fmt.tool is not None and fmt.tool.content(observation) in rendered


def test_chat_template_kwargs_reach_the_template(tokenizers: dict[str, Any]) -> None:
    qwen3 = tokenizers["qwen3"]
    thinking, silent = (
        _play(qwen3, "qwen3", MAZE, ["go north"], chat_template_kwargs={"enable_thinking": on})[0]
        for on in (True, False)
    )
    empty_think = "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert empty_think not in qwen3.decode(list(thinking.token_ids))
    silent_text = qwen3.decode(list(silent.token_ids))
    assert silent_text.count(empty_think) == len(silent.turns)  # every prompt, through the glue too
    llama = tokenizers["llama-3.2"]
    fmt = ChatFormat.probe(llama, "S", template_kwargs={"date_string": "01 Jan 2030"})
    assert "Today Date: 01 Jan 2030" in llama.decode(fmt.first_prompt("hi"))


@pytest.mark.parametrize("name", FAMILIES)
def test_template_check_reports_where_the_template_parts_from_the_loop(
    tokenizers: dict[str, Any], name: str
) -> None:
    report = check_template(tokenizers[name])
    assert report.loop_text != report.template_text or report.token_identical
    for diff in report.differences:  # every difference is real: the loop's text there is not the template's
        assert diff.loop != diff.template
    where = [d.where for d in report.differences]
    if name in ("qwen3", "deepseek-r1-distill"):  # past reasoning is dropped from the re-rendering
        dropped = [
            d for d in report.differences if "I should compute" in d.loop and d.where == "turn 0 action"
        ]
        assert dropped and all("I should compute" not in d.template for d in dropped)
    if name.startswith("llama"):  # tool calls come back as Llama's own JSON
        assert any("parameters" in d.template for d in report.differences), where


def test_template_check_cli(tokenizers: dict[str, Any], tmp_path: Path) -> None:
    tokenizers["qwen3"].save_pretrained(tmp_path / "qwen3")
    runner = CliRunner()
    result = runner.invoke(
        app, ["template-check", str(tmp_path / "qwen3"), "-k", "enable_thinking=false", "--width", "400"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "tool role, verbatim" in out and '"enable_thinking": false' in out
    assert "turn 0 prompt .. turn 0 action" in out and "I should compute" in out
    rows = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert rows and len(rows) == int(out.split(" differences")[0].rsplit("\n", 1)[-1])


@pytest.mark.parametrize("problem", ["missing", "no-tokenizer", "no-template"])
def test_template_check_refuses_a_bad_directory_in_one_line(
    tiny_tokenizer: Any, tmp_path: Path, problem: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from turngym.cli import main

    path = tmp_path / "model"
    if problem != "missing":
        path.mkdir()
    if problem == "no-template":
        tokenizer = copy.deepcopy(tiny_tokenizer)
        tokenizer.chat_template = None
        tokenizer.save_pretrained(path)
    monkeypatch.setattr("sys.argv", ["turngym", "template-check", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert {"missing": "is not a directory", "no-tokenizer": "no tokenizer_config.json"}.get(
        problem, "no chat_template"
    ) in err


def test_eval_passes_template_kwargs_to_the_template(
    tokenizers: dict[str, Any], tiny_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from turngym.trajectory import read_jsonl

    model = tmp_path / "qwen3-tiny"
    shutil.copytree(tiny_dir, model)
    tokenizers["qwen3"].save_pretrained(model)  # the tiny weights with Qwen3's template
    out = tmp_path / "runs.jsonl"
    args = ["eval", "turngym/Maze-v0", "--agent", f"hf:{model}", "--episodes", "1", "--max-new-tokens", "3"]
    args += ["-o", "max_turns=1", "--template-kwarg", "enable_thinking=false", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (traj,) = read_jsonl(out)
    prompt = tokenizers["qwen3"].decode(list(traj.turns[0].prompt_ids))
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
