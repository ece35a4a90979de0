"""``benchmarks/credit_learning.py``: its statistics by hand, its refusals and (slow) the quick run."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[3] / "benchmarks" / "credit_learning.py"
_spec = importlib.util.spec_from_file_location("credit_learning", SCRIPT)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_ci95_by_hand() -> None:
    mean, half = bench.ci95([0.2, 0.4, 0.6])  # std 0.2, t(0.975, 2) = 4.303
    assert mean == pytest.approx(0.4)
    assert half == pytest.approx(4.303 * 0.2 / math.sqrt(3))
    assert bench.ci95([0.5]) == (0.5, 0.0)
    # five seeds: t(0.975, 4) = 2.776; values 0, 0, 0, 1, 1: mean 0.4, std sqrt(0.3)
    assert bench.ci95([0, 0, 0, 1, 1])[1] == pytest.approx(2.776 * math.sqrt(0.3) / math.sqrt(5))


def run_record(method: str, seed: int, curve: list[float]) -> dict:
    its = [0, 4, 8][: len(curve)]
    return {
        "method": method,
        "seed": seed,
        "curve": list(zip(its, curve, strict=True)),
        "eval_tool_calls": [(it, 2.0 + seed) for it in its],
        "eval_turns": [(it, 10.0) for it in its],
        "diagnostics": {name: float(seed) for name in bench.DIAGNOSTICS},
        "seconds": 100.0 + seed,
        "cpu_seconds": 50.0 + seed,
    }


def test_summarize_and_table() -> None:
    runs = [run_record("grpo", 0, [0.2, 0.3, 0.5]), run_record("grpo", 1, [0.4, 0.4, 0.5])]
    summary = bench.summarize(runs, ["grpo"])["grpo"]
    assert summary["iterations"] == [0, 4, 8]
    assert summary["success_mean"] == pytest.approx([0.3, 0.35, 0.5])
    assert summary["success_ci95"][2] == pytest.approx(0.0)
    # changes 0.3 and 0.1: mean 0.2, std sqrt(0.02), t(0.975, 1) = 12.706
    assert summary["change_mean"] == pytest.approx(0.2)
    assert summary["change_ci95"] == pytest.approx(12.706 * math.sqrt(0.02) / math.sqrt(2))
    assert summary["diagnostics"]["singleton_fraction"] == pytest.approx(0.5)
    assert summary["final_eval_tool_calls"] == pytest.approx(2.5)
    text = bench.table({"grpo": summary})
    assert "| grpo | 0.300 | 0.500 ± 0.000 | +0.200 ± 1.271 |" in text


def test_unknown_method_is_refused_before_any_work(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--methods", "ppo", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown methods ['ppo']")
    assert not (tmp_path / "x.json").exists()


def test_method_overrides_select_the_estimator_or_the_arpo_rollout() -> None:
    assert bench.method_overrides("gigpo") == ["credit.estimator=gigpo"]
    assert bench.method_overrides("arpo") == ["credit.estimator=grpo", "rollout.strategy=arpo"]
    bench.check_methods(list(bench.METHODS), ["progress=false", *bench.ENVS["keydoor"]])


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 3 minutes on 2 idle cores; a shared CI host is slower
def test_quick_run_writes_json_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "credit"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").stat().st_size > 1000
    assert data["env_id"] == "turngym/KeyDoor-v0"
    assert set(data["summary"]) == set(bench.METHODS)
    assert len(data["runs"]) == len(bench.METHODS)
    for method, s in data["summary"].items():
        assert s["iterations"] == [0, 1, 2], method
        assert all(0.0 <= v <= 1.0 for v in s["success_mean"])
        assert s["success_ci95"] == [0.0, 0.0, 0.0]  # one seed
        d = s["diagnostics"]
        assert d["step_group_size"] >= 1.0 and 0.0 <= d["singleton_fraction"] <= 1.0
        assert d["tool_calls"] >= 0.0 and 1.0 <= d["turns"] <= 20.0
        assert s["seconds_per_run"] > 0 and s["cpu_seconds_per_run"] > 0
    # KeyDoor's states recur inside a group: GiGPO's step groups are not all singletons
    assert data["summary"]["gigpo"]["diagnostics"]["singleton_fraction"] < 0.9
    assert data["cpu_seconds_total"] > 0
    assert data["table"] in result.stdout
