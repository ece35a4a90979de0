"""WebShopEnv: golden pages for a fixed task, the action grammar, rewards, anchors and baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.webshop.records import write_files
from turngym.agents.baselines import run_episode
from turngym.envs import make
from turngym.envs.checker import check_env
from turngym.envs.webshop.env import WebShopEnv
from turngym.errors import ConfigError

INSTRUCTION = (
    "find me long lasting and moisturizing lipstick in color berry, and price lower than 40.00 dollars"
)
HEAD = f"Instruction: [SEP] {INSTRUCTION} [SEP] Back to Search [SEP] "
SEARCH_PAGE = f"WebShop [SEP] Instruction: [SEP] {INSTRUCTION} [SEP] Search"
RESULTS_PAGE = HEAD + (
    "Page 1 (Total results: 50) [SEP] Next > [SEP] "
    "B00GGZB8AT [SEP] Cobalt Lipstick - Long Lasting, Moisturizing [SEP] $6.67 [SEP] "
    "B0L45GXXGU [SEP] Oakhurst Lipstick - Matte Finish, Long Lasting [SEP] $17.12 [SEP] "
    "B0YD1J2WST [SEP] Lumina Lipstick - Long Lasting, Easy Carry [SEP] $27.15 [SEP] "
    "B0G4PPNDD2 [SEP] Fairway Lipstick - Long Lasting, Easy Carry [SEP] $15.55 [SEP] "
    "B0UF682LI1 [SEP] Juniper Lipstick - Cruelty Free, Vegan [SEP] $8.3 [SEP] "
    "B0PSC76D4Z [SEP] Meridian Lipstick - Moisturizing, Vegan [SEP] $10.97 to $16.47 [SEP] "
    "B0C0W494Y5 [SEP] Vantage Lipstick - Moisturizing, Easy Carry [SEP] $7.53 [SEP] "
    "B08TT9G224 [SEP] Fairway Lipstick - Easy Carry, Waterproof [SEP] $20.92 to $30.96 [SEP] "
    "B0KD78896U [SEP] Meridian Lipstick - Waterproof, Vegan [SEP] $12.4 [SEP] "
    "B0HD71EIX9 [SEP] Cobalt Lipstick - Easy Carry, Vegan [SEP] $29.03"
)
ITEM_PAGE = HEAD + (
    "< Prev [SEP] color [SEP] berry [SEP] coral [SEP] nude [SEP] plum [SEP] ruby red [SEP] "
    "Cobalt Lipstick - Long Lasting, Moisturizing [SEP] Price: $6.67 [SEP] Rating: N.A. [SEP] "
    "Description [SEP] Features [SEP] Reviews [SEP] Buy Now"
)
DONE_PAGE = (
    "Thank you for shopping with us! [SEP] Purchased [SEP] B00GGZB8AT [SEP] "
    "Cobalt Lipstick - Long Lasting, Moisturizing [SEP] Options: color: berry [SEP] "
    "Your score (min 0.0, max 1.0) [SEP] 1.0000"
)
QUERY = "search[find me long lasting and moisturizing lipstick in color berry]"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("bm25"))


@pytest.fixture
def env(cache: str) -> WebShopEnv:
    return WebShopEnv(num_products=200, split="all", cache_dir=cache)


def test_golden_pages_of_the_expert_episode(env: WebShopEnv) -> None:
    obs, info = env.reset(seed=0, options={"task_id": 3})
    assert obs == SEARCH_PAGE and info["admissible_actions"] is None
    steps = [(QUERY, RESULTS_PAGE), ("click[b00ggzb8at]", ITEM_PAGE), ("click[berry]", ITEM_PAGE)]
    for action, page in steps:
        assert env.expert_action() == action
        obs, reward, terminated, truncated, info = env.step(action)
        assert (obs, reward, terminated, truncated, info["invalid_action"]) == (
            page,
            0.0,
            False,
            False,
            False,
        )
        assert info["reward_breakdown"] is None
    assert info["admissible_actions"] == [  # buttons, then product links, then option values
        "click[back to search]", "click[< prev]", "click[description]", "click[features]", "click[reviews]",
        "click[buy now]", "click[berry]", "click[coral]", "click[nude]", "click[plum]", "click[ruby red]",
    ]  # fmt: skip
    obs, reward, terminated, truncated, info = env.step(env.expert_action())
    assert (obs, reward, terminated, truncated, info["won"]) == (DONE_PAGE, 1.0, True, False, True)
    assert info["reward_breakdown"]["score"] == 1.0 and info["reward_breakdown"]["option_matches"] == 1
    assert info["metrics"]["reward/score"] == 1.0 and info["metrics"]["reward/r_price"] == 1.0
    assert "reward/r_option" in info["metrics"] and info["metrics"]["reward/price_upper"] == 40.0


def test_sub_pages_pagination_and_back_navigation(cache: str) -> None:
    env = WebShopEnv(num_products=200, split="all", cache_dir=cache, max_turns=40)
    env.reset(seed=0, options={"task_id": 3})
    env.step(QUERY)
    assert env.step("click[next >]")[0].startswith(
        HEAD + "Page 2 (Total results: 50) [SEP] < Prev [SEP] Next > [SEP] "
    )
    for _ in range(3):
        env.step("click[next >]")
    assert env.step("click[Next >]")[0] == HEAD + "Page 6 (Total results: 50) [SEP] < Prev [SEP] Next >"
    for _ in range(5):
        env.step("click[< prev]")
    assert env.observation == RESULTS_PAGE
    env.step("click[B00GGZB8AT]")
    description = env.step("click[description]")[0]
    assert description == HEAD + (
        "< Prev [SEP] The Cobalt lipstick is long lasting, moisturizing and waterproof. "
        "Made for everyday use and backed by a one year warranty."
    )
    assert env.step("click[< prev]")[0] == ITEM_PAGE
    assert env.step("click[features]")[0] == HEAD + (
        "< Prev [SEP] Moisturizing: chosen with care for daily use. [SEP] "
        "Waterproof: chosen with care for daily use."
    )
    env.step("click[< prev]")
    assert env.step("click[< prev]")[0] == RESULTS_PAGE
    assert env.step("click[back to search]")[0] == SEARCH_PAGE


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("buy it", "expected search[<query>] or click[<button>], got 'buy it'"),
        ("click[buy now]", "on the search page the only action is search[<query>]"),
        ("search[   ]", "the search query is empty"),
        ("search[]", "expected search[<query>] or click[<button>]"),
    ],
)
def test_invalid_actions_on_the_search_page(env: WebShopEnv, action: str, message: str) -> None:
    env.reset(seed=0, options={"task_id": 3})
    obs, reward, terminated, truncated, info = env.step(action)
    assert obs == f"Invalid action: {message}" + obs[len("Invalid action: ") + len(message) :]
    assert obs.endswith("\n\n" + SEARCH_PAGE)
    assert (reward, terminated, truncated, info["invalid_action"]) == (0.0, False, False, True)
    assert info["anchor"] == (SEARCH_PAGE, ())


def test_unknown_click_lists_the_clickables_and_keeps_the_page(env: WebShopEnv) -> None:
    env.reset(seed=0, options={"task_id": 3})
    env.step(QUERY)
    env.step("click[b00ggzb8at]")
    obs, _, _, _, info = env.step("click[teal]")
    assert obs.startswith(
        "Invalid action: 'teal' is not clickable on this page; clickables: back to search, < prev,"
    )
    assert obs.endswith(ITEM_PAGE) and info["invalid_action"] and info["metrics"]["invalid_actions"] == 1.0
    obs, *_ = env.step("click[search]")
    assert obs.startswith("Invalid action: on the search page the only action is search[<query>]")


def test_options_enter_the_anchor_and_leaving_the_product_forgets_them(env: WebShopEnv) -> None:
    env.reset(seed=0, options={"task_id": 3})
    env.step(QUERY)
    before = env.step("click[b00ggzb8at]")[4]
    after = env.step("click[plum]")[4]
    assert before["anchor"] == (ITEM_PAGE, ()) and after["anchor"] == (ITEM_PAGE, (("color", "plum"),))
    env.step("click[features]")
    assert env.step("click[< prev]")[4]["anchor"] == (ITEM_PAGE, (("color", "plum"),))  # sub-page: kept
    assert env.step("click[< prev]")[4]["anchor"] == (RESULTS_PAGE, ())  # back to the results: forgotten
    env.step("click[b00ggzb8at]")
    assert env.anchor() == (ITEM_PAGE, ())
    env.step("click[plum]")
    env.step("click[back to search]")
    env.step(QUERY)
    env.step("click[b00ggzb8at]")
    assert env.anchor() == (ITEM_PAGE, ())
    env.step("click[plum]")
    assert env.step(QUERY)[4]["anchor"] == (RESULTS_PAGE, ())  # a search works from any page


def test_wrong_option_buys_a_partial_score(env: WebShopEnv) -> None:
    env.reset(seed=0, options={"task_id": 3})
    env.step(QUERY)
    env.step("click[b00ggzb8at]")
    env.step("click[plum]")
    _, reward, terminated, _, info = env.step("click[buy now]")
    breakdown = info["reward_breakdown"]
    assert terminated and not info["won"]
    n_att = breakdown["num_attributes"]
    assert reward == pytest.approx((n_att + 0 + 1) / (n_att + 1 + 1))
    assert breakdown["option_matches"] == 0 and breakdown["attribute_matches"] == n_att


def test_fifteen_actions_truncate(env: WebShopEnv) -> None:
    env.reset(seed=0, options={"task_id": 3})
    for i in range(15):
        _, _, terminated, truncated, _ = env.step(QUERY)
        assert not terminated and truncated == (i == 14)


def test_check_env_passes(cache: str) -> None:
    check_env(
        WebShopEnv(num_products=200, split="all", cache_dir=cache),
        make_fresh=lambda: WebShopEnv(num_products=200, split="all", cache_dir=cache),
    )


def test_expert_reaches_at_least_ninety_percent_and_random_far_less(env: WebShopEnv) -> None:
    expert = [run_episode(env, "webshop", "expert", seed=k, task_id=k) for k in range(env.num_tasks)]
    random = [run_episode(env, "webshop", "random", seed=k, task_id=k) for k in range(env.num_tasks)]
    expert_rate = np.mean([t.won for t in expert])
    random_rate = np.mean([t.won for t in random])
    assert expert_rate >= 0.9
    assert random_rate < 0.2
    assert all(len(t.turns) <= 15 for t in expert + random)


def test_real_format_files_drive_the_env(tmp_path: Path, cache: str) -> None:
    write_files(tmp_path)
    env = WebShopEnv(data_dir=str(tmp_path), goals="synthetic", split="all", cache_dir=cache)
    assert env.num_tasks == 9
    wins = [run_episode(env, "webshop", "expert", seed=0, task_id=k).won for k in range(env.num_tasks)]
    assert all(wins)


def test_bad_settings_are_config_errors(tmp_path: Path, cache: str) -> None:
    write_files(tmp_path)
    with pytest.raises(ConfigError, match="split 'train' of this catalog holds no goals"):
        WebShopEnv(data_dir=str(tmp_path), goals="synthetic", split="train", cache_dir=cache)
    with pytest.raises(ConfigError, match="nouns must be 'heuristic' or 'spacy', got 'nltk'"):
        WebShopEnv(num_products=200, split="all", cache_dir=cache, nouns="nltk")
    env = WebShopEnv(num_products=200, split="all", cache_dir=cache)
    with pytest.raises(ConfigError, match=r"task_id must be an int in \[0, 200\)"):
        env.reset(options={"task_id": 200})


def test_registered_env_passes_check_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNGYM_CACHE_DIR", str(tmp_path))
    env = make("turngym/WebShop-v0")
    assert isinstance(env, WebShopEnv) and env.max_turns == 15 and env.num_tasks == 1500  # 3000 goals, train
    check_env(env, make_fresh=lambda: make("turngym/WebShop-v0"))


def test_random_and_malformed_actions_never_raise(env: WebShopEnv) -> None:
    rng = np.random.default_rng(0)
    junk = [
        "click[]",
        "click[[x]]",
        "search[a]b",
        "CLICK[Back to Search]",
        "search[" + "z" * 5000 + "]",
        "🙂",
    ]
    for episode in range(40):
        obs, info = env.reset(seed=episode, options={"task_id": episode})
        for _ in range(15):
            action = junk[int(rng.integers(len(junk)))] if rng.random() < 0.3 else env.random_action(rng)
            obs, reward, terminated, truncated, info = env.step(action)
            assert isinstance(obs, str) and 0.0 <= reward <= 1.0
            assert info["invalid_action"] == obs.startswith("Invalid action: ")
            if terminated or truncated:
                break
