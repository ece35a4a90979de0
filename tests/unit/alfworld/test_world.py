"""Task generation: determinism, split separation, ALFWorld's generation rules."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from turngym.envs.alfworld.vocab import CAN_CONTAIN, OPENABLE, TASK_BY_ID, TRANSFORM
from turngym.envs.alfworld.world import SPLIT_CLASS, SPLITS, all_combos, combo_class, generate, type_of
from turngym.errors import ConfigError


def test_same_split_and_index_give_the_same_household() -> None:
    generate.cache_clear()
    first = generate("train", 17)
    generate.cache_clear()
    assert generate("train", 17) == first
    assert generate("train", 18) != first


def test_splits_never_share_a_household_and_unseen_combinations_never_occur_in_train() -> None:
    houses = {s: [generate(s, k) for k in range(min(n, 400))] for s, n in SPLITS.items()}
    keys = {s: {(h.receptacles, h.objects, h.placement, h.goal) for h in hs} for s, hs in houses.items()}
    names = sorted(keys)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not keys[a] & keys[b], (a, b)
    train_combos = {h.combo for h in houses["train"]}
    for split in ("valid_unseen", "test"):
        assert not train_combos & {h.combo for h in houses[split]}
        assert all(combo_class(h.combo) == SPLIT_CLASS[split] for h in houses[split])


def test_every_task_type_occurs_in_every_split() -> None:
    for split in SPLITS:
        kinds = Counter(generate(split, k).task_type for k in range(SPLITS[split]))
        assert set(kinds) == {1, 2, 3, 4, 5, 6}, (split, kinds)


def test_combinations_follow_the_rooms_and_properties_of_alfworld() -> None:
    for kind, obj, target, room in all_combos():
        assert room in TASK_BY_ID[kind].rooms
        if kind == 2:
            assert target in ("desklamp", "floorlamp")
            continue
        assert obj in CAN_CONTAIN[target]
        if kind in TRANSFORM:
            assert obj in TRANSFORM[kind][2]


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_generated_households_obey_the_rules(split: str) -> None:
    for k in range(150):
        h = generate(split, k)
        rtypes = [type_of(r) for r in h.receptacles]
        otypes = [type_of(o) for o in h.objects]
        # names: each type numbered 1..n, no gaps
        for names in (h.receptacles, h.objects):
            per_type: dict[str, list[int]] = {}
            for n in names:
                per_type.setdefault(type_of(n), []).append(int(n.rsplit(" ", 1)[1]))
            assert all(sorted(v) == list(range(1, len(v) + 1)) for v in per_type.values())
        assert max(Counter(otypes).values()) <= 3
        for o, r in zip(otypes, h.placement, strict=True):
            assert o in CAN_CONTAIN[rtypes[r]] or o in ("desklamp", "floorlamp")
        targets = [r for o, r in zip(otypes, h.placement, strict=True) if o == h.obj]
        assert 2 <= len(targets) <= 3 if h.task_type == 6 else 1 <= len(targets) <= 3
        if h.task_type != 2:
            assert h.target in rtypes
            assert all(rtypes[r] != h.target for r in targets)  # the goal never holds at the start
        else:
            assert h.target in otypes
        if h.task_type in TRANSFORM:
            assert TRANSFORM[h.task_type][1] in rtypes
        template = {
            t.format(obj=h.obj, recep=h.target, toggle=h.target) for t in TASK_BY_ID[h.task_type].templates
        }
        assert h.goal in template
        assert set(rtypes) & OPENABLE or h.room != "kitchen"


def test_goal_sentences_match_alfworld_templates() -> None:
    patterns = [
        r"put (a|some) \w+ (in|on) \w+",
        r"(look at \w+ under the|examine the \w+ with the) (desklamp|floorlamp)",
        r"(put a clean \w+ in|clean some \w+ and put it in) \w+",
        r"(put a hot \w+ in|heat some \w+ and put it in) \w+",
        r"(put a cool \w+ in|cool some \w+ and put it in) \w+",
        r"(put two \w+ in|find two \w+ and put them in) \w+",
    ]
    for k in range(300):
        h = generate("train", k)
        assert re.fullmatch(patterns[h.task_type - 1], h.goal), h.goal


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown ALFWorld split"):
        generate("dev", 0)
    with pytest.raises(ConfigError, match="task_types"):
        generate("train", 0, (7,))
    with pytest.raises(ConfigError, match=">= 0"):
        generate("train", -1)


def test_task_type_filter() -> None:
    assert {generate("train", k, (3, 4)).task_type for k in range(60)} == {3, 4}
