"""``turngym/Search-v0``: Search-R1-style retrieval QA.

The first observation is Search-R1's prompt (research note §3.1) with the question. Each action is
one model turn; as in Search-R1 it is cut right after its first ``</search>`` (else its first
``</answer>``) and the first ``<search>…</search>`` or ``<answer>…</answer>`` in it decides:

* ``<search> q </search>`` → the retriever's top-k passages for ``q`` come back as
  ``\\n\\n<information>Doc 1(Title: "…") …</information>\\n\\n``. At most ``max_searches`` searches
  (default 4); a search beyond that is refused (invalid action) and the agent must answer.
* ``<answer> a </answer>`` → the episode terminates with the reward: exact match after answer
  normalisation (``reward="em"``, default), token F1 (``"f1"``) or Search-R1 v0.3's format-aware
  score of the whole response (``"format"``). ``won`` is exact match whatever the reward.
* anything else → Search-R1's corrective message ("My previous action is invalid. …"), an invalid
  action that counts as a parse failure. An empty query is invalid too.

The turn limit is ``max_searches + 1`` by default (invalid turns use it up, as in Search-R1).

Metrics: ``searches``, ``answered``, ``em``, ``f1``, ``format_score`` and ``tool_productivity``
(OTC: correct answers per search, the denominator floored at 1). The anchor is
``(normalised queries so far, last information block)``; see :mod:`turngym.envs.search.anchors`.

Data: by default the generated knowledge base (:mod:`turngym.envs.search.kb`) with an in-process
BM25 retriever — no files, no server. ``corpus=`` and ``qa=`` load the real formats instead
(:mod:`turngym.envs.search.data`), ``index_dir=`` keeps the index on disk, ``dense_model=`` (a local
encoder directory) retrieves with embeddings instead of BM25, and
``retriever_url=`` sends every search to a ``/retrieve`` server over HTTP.

Baselines: :meth:`SearchEnv.expert_action` issues each hop's query in order (for a bridge
question, the second query names the entity the first look-up finds) and answers once every
supporting passage was retrieved; if one never was, it answers the no-search guess.
:meth:`SearchEnv.no_search_action` answers at once with the best guess that needs no retrieval:
the first option of a comparison, else the most frequent training answer of the question's
template (for loaded QA files, the most frequent golden answer).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

import numpy as np

from turngym.envs.core import StepOutcome, TextEnv
from turngym.envs.search.anchors import SearchAnchor
from turngym.envs.search.data import QAExample, load_corpus, load_qa
from turngym.envs.search.kb import GeneratedQuestion, KBConfig, generate_kb
from turngym.envs.search.retriever import (
    BM25Retriever,
    DenseRetriever,
    Retriever,
    format_information,
    open_retriever,
)
from turngym.envs.search.scoring import (
    exact_match,
    extract_answer,
    f1_score,
    format_score,
    normalize_answer,
)
from turngym.envs.search.server import RetrieverClient

PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time "
    "you get new information. After reasoning, if you find you lack some knowledge, you can call a search "
    "engine by <search> query </search> and it will return the top searched results between <information> "
    "and </information>. You can search as many times as your want. If you find no further external "
    "knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed "
    "illustrations. For example, <answer> Beijing </answer>. Question: {question}\n"
)
"""Search-R1's base prompt template (kept verbatim, including its wording)."""

INVALID_MESSAGE = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
    "</search>. If I want to give the final answer, I should put the answer between <answer> and "
    "</answer>. Let me try again.\n"
)
"""Search-R1's corrective message for a turn with neither a search nor an answer."""

REWARDS = ("em", "f1", "format")
MAX_QUERY_CHARS = 1000
_ACTION = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)


def render_prompt(question: str) -> str:
    """Search-R1's prompt for ``question`` (stripped, with a ``?`` appended when missing)."""
    question = question.strip()
    if not question.endswith("?"):
        question += "?"
    return PROMPT.format(question=question)


def cut_action(text: str) -> str:
    """The action up to its first ``</search>``, else up to its first ``</answer>`` (Search-R1)."""
    for closing in ("</search>", "</answer>"):
        end = text.find(closing)
        if end >= 0:
            return text[: end + len(closing)]
    return text


@lru_cache(maxsize=4)
def _kb_retriever(seed: int) -> BM25Retriever:
    return BM25Retriever(generate_kb(KBConfig(seed=seed)).passages)


class SearchEnv(TextEnv):
    """Answer a question by searching a corpus with ``<search>`` and answering with ``<answer>``."""

    description = "Search-R1-style retrieval QA: <search> a corpus with BM25, then <answer> (EM reward)"

    def __init__(
        self,
        *,
        split: str = "train",
        max_searches: int = 4,
        topk: int = 3,
        reward: str = "em",
        kb_seed: int = 0,
        corpus: str | None = None,
        qa: str | None = None,
        index_dir: str | None = None,
        dense_model: str | None = None,
        retriever_url: str | None = None,
        max_turns: int | None = None,
        **kwargs: Any,
    ) -> None:
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if max_searches < 0 or topk < 1:
            raise ValueError(f"expected max_searches >= 0 and topk >= 1, got {max_searches} and {topk}")
        if (corpus is None) != (qa is None) and retriever_url is None:
            raise ValueError(
                "give both corpus= and qa= (or qa= with retriever_url=), or neither for the built-in KB"
            )
        super().__init__(max_turns=max_searches + 1 if max_turns is None else max_turns, **kwargs)
        self.max_searches, self.topk, self.reward_kind = max_searches, topk, reward
        self._kb = generate_kb(KBConfig(seed=kb_seed))
        self._tasks: tuple[GeneratedQuestion, ...] | tuple[QAExample, ...]
        if qa is None:
            self._tasks = self._kb.split(split)
            self._prior_answer = ""
        else:
            self._tasks = tuple(load_qa(qa))
            counts = Counter(e.golden_answers[0] for e in self._tasks)
            self._prior_answer = max(sorted(counts), key=lambda a: counts[a])
        self.retriever: Retriever
        if retriever_url is not None:
            self.retriever = RetrieverClient(retriever_url)
        elif corpus is not None and index_dir is not None:
            self.retriever = open_retriever(corpus, index_dir, dense_model=dense_model)
        elif corpus is not None:
            passages = load_corpus(corpus)
            self.retriever = (
                BM25Retriever(passages) if dense_model is None else DenseRetriever(dense_model, passages)
            )
        else:
            self.retriever = _kb_retriever(kb_seed)
        self._task: GeneratedQuestion | QAExample = self._tasks[0]
        self._reset_state()

    def _reset_state(self) -> None:
        self._queries: list[str] = []
        self._information = ""
        self._retrieved: set[str] = set()
        self._response = ""

    @property
    def num_tasks(self) -> int:
        return len(self._tasks)

    @property
    def question(self) -> GeneratedQuestion | QAExample:
        """The current task's question and golden answers."""
        return self._task

    @property
    def response(self) -> str:
        """The episode's response so far: the cut actions and the env's replies, as Search-R1 scores it."""
        return self._response

    def _reset(self, task_id: Any) -> str:
        index = int(task_id)
        if not 0 <= index < len(self._tasks):
            raise ValueError(f"task_id must lie in [0, {len(self._tasks)}), got {task_id!r}")
        self._task = self._tasks[index]
        self._reset_state()
        return render_prompt(self._task.question)

    def anchor(self) -> SearchAnchor:
        return tuple(normalize_answer(q) for q in self._queries), self._information

    def _step(self, action: str) -> StepOutcome:
        action = cut_action(action)
        match = _ACTION.search(action)
        if match is None:
            return self._reply(action, INVALID_MESSAGE, invalid=True, parse_error=True)
        content = match.group(2).strip()
        if match.group(1) == "answer":
            return self._answer(action, content)
        if not content:
            return self._reply(
                action, "\nMy search query is empty. " + INVALID_MESSAGE.lstrip(), invalid=True
            )
        if len(content) > MAX_QUERY_CHARS:
            message = f"\nMy search query has {len(content)} characters; the limit is {MAX_QUERY_CHARS}.\n"
            return self._reply(action, message, invalid=True)
        if len(self._queries) >= self.max_searches:
            message = (
                f"\nI have used all {self.max_searches} searches. I must give the final answer between "
                "<answer> and </answer> now.\n"
            )
            return self._reply(action, message, invalid=True)
        hits = self.retriever.retrieve([content], self.topk)[0]
        self._queries.append(content)
        self._retrieved.update(hit.passage.id for hit in hits)
        self._information = format_information(hits).strip()
        return self._reply(action, f"\n\n<information>{self._information}</information>\n\n")

    def _reply(
        self, action: str, observation: str, *, invalid: bool = False, parse_error: bool = False
    ) -> StepOutcome:
        self._response += action + observation
        return StepOutcome(
            observation,
            invalid_action=invalid,
            parse_error=parse_error,
            metrics={"searches": float(len(self._queries))},
        )

    def _answer(self, action: str, content: str) -> StepOutcome:
        self._response += action
        golden = self._task.golden_answers
        answer = extract_answer(action)
        em = exact_match(answer, golden)
        scores = {"em": em, "f1": f1_score(answer, golden), "format": format_score(self._response, golden)}
        searches = float(len(self._queries))
        metrics = {
            "searches": searches,
            "answered": 1.0,
            "em": em,
            "f1": scores["f1"],
            "format_score": scores["format"],
            "tool_productivity": em / max(1.0, searches),
        }
        verdict = "correct" if em else f"wrong; accepted answers: {', '.join(golden)}"
        return StepOutcome(
            f"Your answer {content!r} is {verdict}.",
            reward=scores[self.reward_kind],
            terminated=True,
            won=bool(em),
            metrics=metrics,
        )

    # ---- baselines ----------------------------------------------------------------------
    def _guess(self) -> str:
        task = self._task
        if isinstance(task, GeneratedQuestion):
            return task.options[0] if task.options else self._kb.answer_priors.get(task.template, "")
        return self._prior_answer

    def no_search_action(self) -> str:
        """Answer at once with the best guess that needs no retrieval (see the module docstring)."""
        return f"<think>I will answer without searching.</think>\n<answer> {self._guess()} </answer>"

    def expert_action(self) -> str:
        """Issue the next hop's query; answer once every supporting passage has been retrieved."""
        task = self._task
        if isinstance(task, GeneratedQuestion):
            hops = task.hops
            found = all(h.passage_id in self._retrieved for h in hops)
            pending = len(self._queries) < len(hops) and len(self._queries) < self.max_searches
            if pending and not found:
                query = hops[len(self._queries)].query
                return f"<think>I need to look up {query}.</think>\n<search> {query} </search>"
            answer = task.golden_answers[0] if found else self._guess()
        else:
            if not self._queries and self.max_searches > 0:
                return f"<think>I should search for the question.</think>\n<search> {task.question} </search>"
            answer = task.golden_answers[0]
        return f"<think>The information answers the question.</think>\n<answer> {answer} </answer>"

    def random_action(self, rng: np.random.Generator) -> str:
        """A random search for a word of the question, a random answer, or malformed text."""
        words = self._task.question.rstrip("?").split() or ["?"]
        word = words[int(rng.integers(len(words)))]
        choice = int(rng.integers(3))
        if choice == 0:
            return f"<search> {word} </search>"
        if choice == 1:
            return f"<answer> {word} </answer>"
        return f"I think the answer might be {word}."

    def close(self) -> None:
        if isinstance(self.retriever, RetrieverClient):
            self.retriever.close()
        super().close()
