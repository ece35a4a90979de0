"""The built-in knowledge base: fictional countries, cities, people and companies, rendered as
encyclopedia-style passages, and questions whose answers can only be found by retrieval.

Every name is made from random syllables and every attribute (years, populations, birthplaces,
founders, headquarters) is drawn at random, so no answer can be guessed from the question or from
world knowledge. Each entity gets one passage whose first line is its quoted title, in Search-R1's
corpus form. Facts are placed so that each question needs the number of look-ups it claims: a
person's passage names the birth city but neither its country nor the companies the person
founded; a company's passage names its founder and headquarters city but nothing about them.

Question kinds (each with the look-ups an expert makes, ``hops``):

* ``single`` — one look-up: a person's birth city, a company's founding year or founder, a city's
  country, a country's capital.
* ``bridge`` — two look-ups through an intermediate entity: the birth city or birth year of a
  company's founder, the country of a company's headquarters, the country a person was born in.
* ``comparison`` — two look-ups and a comparison: which of two companies was founded earlier,
  which of two people was born earlier, which of two cities is more populous.

The same :class:`KBConfig` always gives the same knowledge base and the same question order; the
``train`` split holds 80% of the questions and ``test`` the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from turngym.envs.search.data import Passage

_ONSETS = (
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "k",
    "l",
    "m",
    "n",
    "p",
    "qu",
    "r",
    "s",
    "t",
    "tr",
    "v",
    "z",
)
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou", "ia")
_CODAS = ("", "", "n", "r", "l", "s", "th", "x", "nd", "rk")
_OCCUPATIONS = (
    "engineer",
    "painter",
    "chemist",
    "architect",
    "novelist",
    "composer",
    "surveyor",
    "economist",
)
_INDUSTRIES = (
    "shipbuilding",
    "textile",
    "software",
    "glassmaking",
    "railway",
    "pharmaceutical",
    "publishing",
)
_COMPANY_SUFFIXES = ("Works", "Holdings", "Instruments", "Company", "Industries", "Foundry", "Labs")


@dataclass(frozen=True)
class KBConfig:
    """Sizes and seed of a generated knowledge base."""

    seed: int = 0
    """Seed of every random choice (names, attributes, question order)."""
    countries: int = 12
    """Number of countries; each city lies in one."""
    cities: int = 48
    """Number of cities (the first city of each country is its capital)."""
    people: int = 160
    """Number of people; each is born in a city."""
    companies: int = 80
    """Number of companies; each has a distinct founder and a headquarters city."""


@dataclass(frozen=True)
class Hop:
    """One look-up an expert makes: the query it sends and the passage that holds the fact."""

    query: str
    passage_id: str


@dataclass(frozen=True)
class GeneratedQuestion:
    """A question over the knowledge base with its answer and the look-ups that find it."""

    id: str
    question: str
    golden_answers: tuple[str, ...]
    kind: str
    """``single``, ``bridge`` or ``comparison``."""
    template: str
    """Name of the question template (e.g. ``founder_birth_city``)."""
    hops: tuple[Hop, ...]
    options: tuple[str, ...] = ()
    """The two candidates of a comparison question (empty otherwise)."""


@dataclass(frozen=True)
class KnowledgeBase:
    """Passages and questions of one generated knowledge base."""

    config: KBConfig
    passages: tuple[Passage, ...]
    questions: tuple[GeneratedQuestion, ...]
    answer_priors: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """For each template, its most frequent answer among train questions (the no-search guess)."""

    def split(self, name: str) -> tuple[GeneratedQuestion, ...]:
        """The ``train`` (first 80%) or ``test`` (last 20%) questions."""
        cut = (len(self.questions) * 4) // 5
        if name == "train":
            return self.questions[:cut]
        if name == "test":
            return self.questions[cut:]
        raise ValueError(f"split must be 'train' or 'test', got {name!r}")


@dataclass
class _Entity:
    id: str
    name: str
    attrs: dict[str, Any]
    """Attribute values are ints, strings, other entities and lists of entities (hence Any)."""


class _Namer:
    """Unique capitalised words made from syllables; no word is reused across entities."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.used = rng, set[str]()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        while True:
            n = int(self.rng.integers(syllables[0], syllables[1] + 1))
            parts = [
                _ONSETS[int(self.rng.integers(len(_ONSETS)))]
                + _VOWELS[int(self.rng.integers(len(_VOWELS)))]
                + _CODAS[int(self.rng.integers(len(_CODAS)))]
                for _ in range(n)
            ]
            word = "".join(parts).capitalize()
            if word.lower() not in self.used and len(word) >= 5:
                self.used.add(word.lower())
                return word


def _pick(rng: np.random.Generator, items: Any) -> Any:
    """A uniformly drawn element of a list of entities or a tuple of words."""
    return items[int(rng.integers(len(items)))]


def _build_entities(cfg: KBConfig, rng: np.random.Generator) -> dict[str, list[_Entity]]:
    namer = _Namer(rng)
    countries = [_Entity(f"country-{i}", namer.word(), {}) for i in range(cfg.countries)]
    cities = []
    for i in range(cfg.cities):
        country = countries[i % cfg.countries]
        attrs = {
            "country": country,
            "founded": int(rng.integers(800, 1900)),
            "population": int(rng.integers(20, 3000)) * 1000 + int(rng.integers(1000)),
        }
        cities.append(_Entity(f"city-{i}", namer.word(), attrs))
    for i, country in enumerate(countries):
        country.attrs["capital"] = cities[i]
    people = [
        _Entity(
            f"person-{i}",
            f"{namer.word((2, 2))} {namer.word()}",
            {
                "born": int(rng.integers(1820, 1960)),
                "birth_city": _pick(rng, cities),
                "occupation": _pick(rng, _OCCUPATIONS),
            },
        )
        for i in range(cfg.people)
    ]
    founders = rng.permutation(cfg.people)[: cfg.companies]
    companies = []
    for i, founder_index in enumerate(founders):
        founder = people[int(founder_index)]
        attrs = {
            "founder": founder,
            "founded": int(founder.attrs["born"]) + int(rng.integers(22, 60)),
            "hq": _pick(rng, cities),
            "industry": _pick(rng, _INDUSTRIES),
        }
        name = f"{namer.word()} {_pick(rng, _COMPANY_SUFFIXES)}"
        companies.append(_Entity(f"company-{i}", name, attrs))
    return {"country": countries, "city": cities, "person": people, "company": companies}


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _passage(entity: _Entity, kind: str) -> Passage:
    a = entity.attrs
    name = entity.name
    if kind == "country":
        text = f"{name} is a country. Its capital and oldest city is {a['capital'].name}."
    elif kind == "city":
        text = (
            f"{name} is a city in {a['country'].name}, founded in {a['founded']}. "
            f"It has a population of {a['population']:,} and is known for its markets and bridges."
        )
    elif kind == "person":
        surname = name.split()[-1]
        text = (
            f"{name} (born {a['born']}) is {_a(str(a['occupation']))} who was born in the city of "
            f"{a['birth_city'].name}. {surname} is remembered for a long and varied career."
        )
    else:
        text = (
            f"{name} is {_a(str(a['industry']))} company founded in {a['founded']} by "
            f"{a['founder'].name}. Its headquarters are in {a['hq'].name}."
        )
    return Passage.from_title_text(entity.id, name, text)


def _hop(entity: _Entity, *words: str) -> Hop:
    return Hop(" ".join([entity.name, *words]), entity.id)


Entities = dict[str, list[_Entity]]
Made = tuple[str, str, tuple[Hop, ...]]
"""A made question: its text, its answer and its hops."""


def _single(template: str, rng: np.random.Generator, e: Entities) -> Made:
    if template == "birth_city":
        p = _pick(rng, e["person"])
        return f"In which city was {p.name} born?", p.attrs["birth_city"].name, (_hop(p, "born"),)
    if template == "company_founded":
        c = _pick(rng, e["company"])
        return f"In what year was {c.name} founded?", str(c.attrs["founded"]), (_hop(c, "founded"),)
    if template == "company_founder":
        c = _pick(rng, e["company"])
        return f"Who founded {c.name}?", c.attrs["founder"].name, (_hop(c, "founded by"),)
    if template == "city_country":
        c = _pick(rng, e["city"])
        return f"In which country is the city of {c.name}?", c.attrs["country"].name, (_hop(c),)
    k = _pick(rng, e["country"])
    return f"What is the capital of {k.name}?", k.attrs["capital"].name, (_hop(k, "capital"),)


def _bridge(template: str, rng: np.random.Generator, e: Entities) -> Made:
    c = _pick(rng, e["company"])
    while template == "founder_birth_city" and c.attrs["founder"].attrs["birth_city"] is c.attrs["hq"]:
        c = _pick(rng, e["company"])  # the answer must not already sit in the company's passage
    founder = c.attrs["founder"]
    if template == "founder_birth_city":
        hops = (_hop(c, "founded by"), _hop(founder, "born"))
        return f"In which city was the founder of {c.name} born?", founder.attrs["birth_city"].name, hops
    if template == "founder_birth_year":
        hops = (_hop(c, "founded by"), _hop(founder, "born"))
        return f"In what year was the founder of {c.name} born?", str(founder.attrs["born"]), hops
    if template == "hq_country":
        hq = c.attrs["hq"]
        hops = (_hop(c, "headquarters"), _hop(hq))
        return f"In which country are the headquarters of {c.name}?", hq.attrs["country"].name, hops
    p = _pick(rng, e["person"])
    city = p.attrs["birth_city"]
    return f"In which country was {p.name} born?", city.attrs["country"].name, (_hop(p, "born"), _hop(city))


_COMPARISONS = {
    "earlier_company": ("company", "founded", min, "Which company was founded earlier, {} or {}?"),
    "earlier_person": ("person", "born", min, "Who was born earlier, {} or {}?"),
    "larger_city": ("city", "population", max, "Which city has the larger population, {} or {}?"),
}


def _comparison(
    template: str, rng: np.random.Generator, e: Entities
) -> tuple[str, str, tuple[Hop, ...], tuple[str, str]]:
    kind, attr, choose, text = _COMPARISONS[template]
    while True:
        i, j = rng.choice(len(e[kind]), size=2, replace=False)
        x, y = e[kind][int(i)], e[kind][int(j)]
        if x.attrs[attr] != y.attrs[attr]:
            break
    winner = choose((x, y), key=lambda entity: entity.attrs[attr])
    return text.format(x.name, y.name), winner.name, (_hop(x, attr), _hop(y, attr)), (x.name, y.name)


_TEMPLATES: tuple[tuple[str, str, int], ...] = (
    ("single", "birth_city", 90),
    ("single", "company_founded", 70),
    ("single", "company_founder", 70),
    ("single", "city_country", 40),
    ("single", "country_capital", 30),
    ("bridge", "founder_birth_city", 80),
    ("bridge", "founder_birth_year", 70),
    ("bridge", "hq_country", 70),
    ("bridge", "person_country", 80),
    ("comparison", "earlier_company", 40),
    ("comparison", "earlier_person", 40),
    ("comparison", "larger_city", 30),
)
"""(kind, template, count): 300 single-hop, 300 bridge and 110 comparison questions by default."""


def _questions(entities: dict[str, list[_Entity]], rng: np.random.Generator) -> list[GeneratedQuestion]:
    made: list[GeneratedQuestion] = []
    seen: set[str] = set()
    for kind, template, count in _TEMPLATES:
        attempts = 0
        produced = 0
        while produced < count and attempts < count * 20:
            attempts += 1
            options: tuple[str, ...] = ()
            if kind == "single":
                text, answer, hops = _single(template, rng, entities)
            elif kind == "bridge":
                text, answer, hops = _bridge(template, rng, entities)
            else:
                text, answer, hops, options = _comparison(template, rng, entities)
            if text in seen:
                continue
            seen.add(text)
            produced += 1
            made.append(GeneratedQuestion("", text, (answer,), kind, template, hops, options))
    order = rng.permutation(len(made))
    return [
        GeneratedQuestion(f"kb-{n}", q.question, q.golden_answers, q.kind, q.template, q.hops, q.options)
        for n, q in enumerate(made[int(i)] for i in order)
    ]


def _priors(questions: tuple[GeneratedQuestion, ...]) -> dict[str, str]:
    counts: dict[str, dict[str, int]] = {}
    for q in questions:
        per = counts.setdefault(q.template, {})
        per[q.golden_answers[0]] = per.get(q.golden_answers[0], 0) + 1
    return {t: max(sorted(c), key=lambda a: c[a]) for t, c in counts.items()}


@lru_cache(maxsize=8)
def generate_kb(config: KBConfig = KBConfig()) -> KnowledgeBase:
    """Generate (or return the cached) knowledge base of ``config``."""
    rng = np.random.default_rng(config.seed)
    entities = _build_entities(config, rng)
    passages = tuple(_passage(ent, kind) for kind, group in entities.items() for ent in group)
    questions = tuple(_questions(entities, rng))
    kb = KnowledgeBase(config, passages, questions)
    return KnowledgeBase(config, passages, questions, _priors(kb.split("train")))
