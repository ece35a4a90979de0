"""Fixtures: the tiny model built once per test session in a temporary directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from turngym.agents.hf import HFPolicy, load_tokenizer_and_model
from turngym.agents.tiny import build_tiny


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("cache") / "tiny")


@pytest.fixture(scope="session")
def tiny_policy(tiny_dir: Path) -> HFPolicy:
    return HFPolicy.from_pretrained(tiny_dir, num_threads=1)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dir: Path) -> Any:
    return load_tokenizer_and_model(tiny_dir)[0]
