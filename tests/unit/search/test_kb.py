"""The generated knowledge base: determinism, question mix, and that answers need retrieval."""

from __future__ import annotations

from collections import Counter

from turngym.envs.search.data import Passage
from turngym.envs.search.kb import KBConfig, generate_kb
from turngym.envs.search.scoring import normalize_answer


def test_same_config_same_kb_and_different_seed_different_kb() -> None:
    a = generate_kb(KBConfig(seed=3))
    generate_kb.cache_clear()
    b = generate_kb(KBConfig(seed=3))
    assert a == b
    assert a.passages != generate_kb(KBConfig(seed=4)).passages


def test_sizes_kinds_and_split() -> None:
    kb = generate_kb()
    cfg = kb.config
    assert len(kb.passages) == cfg.countries + cfg.cities + cfg.people + cfg.companies
    assert len({p.id for p in kb.passages}) == len(kb.passages)
    kinds = Counter(q.kind for q in kb.questions)
    assert set(kinds) == {"single", "bridge", "comparison"}
    assert kinds["bridge"] >= 250 and kinds["comparison"] >= 100
    assert len({q.question for q in kb.questions}) == len(kb.questions)
    train, test = kb.split("train"), kb.split("test")
    assert len(train) + len(test) == len(kb.questions)
    assert len(test) == len(kb.questions) - (len(kb.questions) * 4) // 5


def _by_id() -> dict[str, Passage]:
    return {p.id: p for p in generate_kb().passages}


def test_answers_are_in_the_last_hop_passage_and_not_in_the_question() -> None:
    passages = _by_id()
    for q in generate_kb().questions:
        answer = normalize_answer(q.golden_answers[0])
        if q.kind == "comparison":
            assert q.golden_answers[0] in q.options
            continue
        assert answer not in normalize_answer(q.question), q
        assert answer in normalize_answer(passages[q.hops[-1].passage_id].contents), q


def test_bridge_answers_are_not_in_the_first_hop_passage() -> None:
    passages = _by_id()
    bridges = [q for q in generate_kb().questions if q.kind == "bridge"]
    for q in bridges:
        first = normalize_answer(passages[q.hops[0].passage_id].contents)
        assert normalize_answer(q.golden_answers[0]) not in first.split(), q
        # the second hop is named in the first hop's passage: that is the bridge
        assert q.hops[1].query.split(" ")[0] in passages[q.hops[0].passage_id].contents


def test_comparison_answer_is_the_right_extreme() -> None:
    passages = _by_id()
    q = next(q for q in generate_kb().questions if q.template == "earlier_person")
    years = [int(passages[h.passage_id].contents.split("(born ")[1][:4]) for h in q.hops]
    assert q.golden_answers[0] == q.options[years.index(min(years))]


def test_passage_golden_text() -> None:
    kb = generate_kb()
    company = next(p for p in kb.passages if p.id == "company-0")
    assert company.contents.startswith(f'"{company.title}"\n{company.title} is a')
    assert " company founded in " in company.contents and "Its headquarters are in " in company.contents
