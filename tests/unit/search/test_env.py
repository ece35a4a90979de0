"""``turngym/Search-v0``: the Search-R1 protocol, rewards, metrics, anchors and the two baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from turngym.envs import make
from turngym.envs.checker import check_env
from turngym.envs.search.env import INVALID_MESSAGE, PROMPT, SearchEnv, cut_action, render_prompt
from turngym.envs.search.kb import generate_kb
from turngym.envs.search.retriever import BM25Retriever
from turngym.envs.search.server import RetrieverClient, create_retriever_app

ENV_ID = "turngym/Search-v0"


def _task_of(env: SearchEnv, template: str) -> int:
    return next(i for i in range(env.num_tasks) if env._tasks[i].template == template)  # type: ignore[union-attr]  # KB tasks


def test_prompt_is_search_r1_base_template() -> None:
    text = render_prompt("  who founded Velmora ")
    assert text.startswith(
        "Answer the given question. You must conduct reasoning inside <think> and </think>"
    )
    assert "For example, <answer> Beijing </answer>. Question: who founded Velmora?\n" in text
    assert text == PROMPT.format(question="who founded Velmora?")


@pytest.mark.parametrize(
    ("action", "cut"),
    [
        ("<search> a </search> <answer> b </answer>", "<search> a </search>"),
        ("<answer> b </answer><search> a </search>", "<answer> b </answer><search> a </search>"),
        ("<think>x</think><answer>b</answer> rest", "<think>x</think><answer>b</answer>"),
        ("plain", "plain"),
    ],
)
def test_cut_action(action: str, cut: str) -> None:
    assert cut_action(action) == cut


def test_search_observation_is_search_r1_information_block() -> None:
    env = SearchEnv()
    env.reset(seed=0, options={"task_id": _task_of(env, "company_founder")})
    hop = env.question.hops[0]  # type: ignore[union-attr]  # KB task
    obs, reward, terminated, truncated, info = env.step(
        f"<think>look it up</think>\n<search> {hop.query} </search>"
    )
    assert obs.startswith('\n\n<information>Doc 1(Title: "') and obs.endswith("</information>\n\n")
    assert obs.count("\nDoc ") == 2  # three documents, top-3
    passage = next(p for p in generate_kb().passages if p.id == hop.passage_id)
    title, _, text = passage.contents.partition("\n")
    assert f"Doc 1(Title: {title}) {text}" in obs
    assert (reward, terminated, truncated, info["invalid_action"]) == (0.0, False, False, False)
    assert info["metrics"]["searches"] == 1.0
    assert info["anchor"] == (
        (hop.query.lower(),),
        obs.strip()[len("<information>") : -len("</information>")],
    )


def test_invalid_and_empty_and_oversized_queries() -> None:
    env = SearchEnv()
    env.reset(seed=0, options={"task_id": 0})
    obs, _, _, _, info = env.step("I think it is Paris.")
    assert obs == INVALID_MESSAGE
    assert info["invalid_action"] and info["metrics"]["parse_failures"] == 1.0
    obs, _, _, _, info = env.step("<search>   </search>")
    assert obs.startswith("\nMy search query is empty.") and info["invalid_action"]
    assert info["metrics"]["parse_failures"] == 1.0  # well-formed tags: not a parse failure
    obs, _, _, truncated, info = env.step("<search>" + "q" * 2000 + "</search>")
    assert "2000 characters" in obs and info["invalid_action"] and info["metrics"]["searches"] == 0.0
    assert not truncated


def test_search_budget_and_turn_limit() -> None:
    env = SearchEnv(max_searches=2)
    assert env.max_turns == 3
    env.reset(seed=0, options={"task_id": 0})
    env.step("<search> one </search>")
    env.step("<search> two </search>")
    env2 = SearchEnv(max_searches=2, max_turns=10)
    env2.reset(seed=0, options={"task_id": 0})
    env2.step("<search> one </search>")
    env2.step("<search> two </search>")
    obs, _, terminated, truncated, info = env2.step("<search> three </search>")
    assert "used all 2 searches" in obs and info["invalid_action"] and info["metrics"]["searches"] == 2.0
    assert not terminated and not truncated
    _, _, _, truncated, _ = env.step("<search> three </search>")
    assert truncated  # the default limit is max_searches + 1 turns


def test_answer_rewards_em_f1_format_and_metrics() -> None:
    results = {}
    for reward in ("em", "f1", "format"):
        env = SearchEnv(reward=reward)
        env.reset(seed=0, options={"task_id": _task_of(env, "company_founder")})
        golden = env.question.golden_answers[0]
        first_name = golden.split()[0]
        env.step(env.expert_action())
        obs, r, terminated, _, info = env.step(f"<think>got it</think>\n<answer> {first_name} </answer>")
        results[reward] = r
        assert terminated and not info["won"]
        assert "wrong; accepted answers: " + golden in obs
        assert info["metrics"]["em"] == 0.0 and info["metrics"]["f1"] == pytest.approx(2 / 3)
        assert info["metrics"]["format_score"] == pytest.approx(0.2)  # well-formed but wrong
        assert info["metrics"]["tool_productivity"] == 0.0
    assert results == pytest.approx({"em": 0.0, "f1": 2 / 3, "format": 0.2})


def test_correct_answer_without_thinking_scores_em_but_not_full_format() -> None:
    env = SearchEnv(reward="format")
    env.reset(seed=0, options={"task_id": 0})
    golden = env.question.golden_answers[0]
    _, r, terminated, _, info = env.step(f"<answer>{golden}</answer> and some trailing words")
    assert terminated and info["won"]
    assert r == pytest.approx(0.8) and info["metrics"]["em"] == 1.0
    assert info["metrics"]["tool_productivity"] == 1.0  # no search: denominator floored at 1


def test_prompt_example_answer_never_counts() -> None:
    env = SearchEnv()
    env.reset(seed=0, options={"task_id": 0})
    _, r, terminated, _, info = env.step("<think>no idea</think> I give up")
    assert r == 0.0 and not terminated and info["invalid_action"]


def test_expert_reaches_95_percent_and_no_search_stays_low() -> None:
    env = SearchEnv(split="test")
    expert_em, no_search_em, searches = [], [], []
    for task in range(env.num_tasks):
        env.reset(seed=0, options={"task_id": task})
        while True:
            _, _, terminated, truncated, info = env.step(env.expert_action())
            if terminated or truncated:
                break
        expert_em.append(info["metrics"]["em"])
        searches.append(info["metrics"]["searches"])
        env.reset(seed=0, options={"task_id": task})
        _, reward, terminated, _, _ = env.step(env.no_search_action())
        assert terminated
        no_search_em.append(reward)
    assert sum(expert_em) / len(expert_em) >= 0.95
    assert sum(no_search_em) / len(no_search_em) <= 0.25
    kinds = [env._tasks[i].kind for i in range(env.num_tasks)]  # type: ignore[union-attr]  # KB tasks
    multi = [s for s, k in zip(searches, kinds, strict=True) if k != "single"]
    assert sum(multi) / len(multi) >= 1.9  # multi-hop questions really take two searches


def test_same_seed_same_actions_same_anchors_and_check_env() -> None:
    check_env(make(ENV_ID), make_fresh=lambda: make(ENV_ID))
    env = make(ENV_ID)
    _, info = env.reset(seed=1, options={"task_id": 5})
    assert info["anchor"] == ((), "")


def test_file_data_env_with_expert(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"id": "0", "contents": '"Velmora"\nVelmora was founded by Ilsa Quorven.'})
        + "\n"
        + json.dumps({"id": "1", "contents": '"Ostravia"\nOstravia is a cold country.'})
        + "\n"
    )
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"id": "a", "question": "who founded Velmora", "golden_answers": ["Ilsa Quorven"]})
    )
    env = SearchEnv(corpus=str(corpus), qa=str(qa), index_dir=str(tmp_path / "index"))
    assert env.num_tasks == 1
    obs, _ = env.reset(seed=0)
    assert obs.endswith("Question: who founded Velmora?\n")
    obs, *_ = env.step(env.expert_action())
    assert obs.startswith('\n\n<information>Doc 1(Title: "Velmora") Velmora was founded by Ilsa Quorven.')
    assert "Ostravia" not in obs  # no shared term: not returned
    _, reward, terminated, _, _ = env.step(env.expert_action())
    assert terminated and reward == 1.0
    assert (tmp_path / "index" / "turngym_index.json").is_file()
    with pytest.raises(ValueError, match="both corpus= and qa="):
        SearchEnv(corpus=str(corpus))


def test_file_data_env_with_a_dense_encoder(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [("0", "velmora company founded"), ("1", "ostravia capital city"), ("2", "paris river north")]
    corpus.write_text(
        "".join(json.dumps({"id": i, "title": t.split()[0], "text": t}) + "\n" for i, t in rows)
    )
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "ostravia capital city", "golden_answers": ["Dunmere"]}))
    env = SearchEnv(corpus=str(corpus), qa=str(qa), dense_model=str(tiny_encoder_dir))
    env.reset(seed=0)
    obs, *_ = env.step("<search> velmora company founded </search>")
    assert obs.count("Doc ") == 3  # dense search always returns topk passages
    indexed = SearchEnv(
        corpus=str(corpus), qa=str(qa), dense_model=str(tiny_encoder_dir), index_dir=str(tmp_path / "d")
    )
    indexed.reset(seed=0)
    assert indexed.step("<search> velmora company founded </search>")[0] == obs
    assert (tmp_path / "d" / "dense_embeddings.npy").is_file()


def test_env_over_http_matches_in_process() -> None:
    app = create_retriever_app(BM25Retriever(generate_kb().passages))
    with TestClient(app) as http:
        remote = SearchEnv(retriever_url="http://testserver")
        remote.retriever = RetrieverClient("http://testserver", http=http)
        local = SearchEnv()
        for env in (remote, local):
            env.reset(seed=0, options={"task_id": 7})
        for _ in range(3):
            a = local.expert_action()
            assert remote.expert_action() == a
            step_local, step_remote = local.step(a), remote.step(a)
            assert step_remote[:4] == step_local[:4] and step_remote[4]["anchor"] == step_local[4]["anchor"]
            if step_local[2]:
                break


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="reward must be one of"):
        SearchEnv(reward="bleu")
    with pytest.raises(ValueError, match="topk >= 1"):
        SearchEnv(topk=0)
    env = SearchEnv()
    with pytest.raises(ValueError, match="task_id must lie in"):
        env.reset(options={"task_id": 10_000})
