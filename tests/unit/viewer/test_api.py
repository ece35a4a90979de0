"""The viewer's JSON API over a run directory and an eval JSONL: pages, filters, search, one
trajectory with its credit and links, malformed lines, charts, and the errors of bad requests."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.viewer_data import episode
from turngym.errors import ViewerError
from turngym.trainers import advantages as credit
from turngym.trainers.rollout_log import write_rollouts
from turngym.trajectory import write_jsonl
from turngym.viewer import TrajectoryStore, create_viewer_app, resolve_source


@pytest.fixture
def client(run_dir: Path) -> TestClient:
    return TestClient(create_viewer_app(run_dir))


def test_the_list_pages_through_groups_in_order(client: TestClient) -> None:
    page = client.get("/api/trajectories", params={"limit": 4}).json()
    assert page["total"] == 8 and [i["id"] for i in page["items"]] == [0, 1, 2, 3]
    first = page["items"][0]
    assert first["group"] == {"key": "3:11", "size": 3, "wins": 2}
    assert (first["iteration"], first["won"], first["return"], first["turns"]) == (1, True, 1.0, 2)
    rest = client.get("/api/trajectories", params={"offset": 4, "limit": 4}).json()
    assert [i["id"] for i in rest["items"]] == [4, 5, 6, 7]
    assert rest["items"][-1]["branched"] and rest["items"][-1]["iteration"] == 2
    assert client.get("/api/trajectories", params={"offset": 8}).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"iteration": 2}, [6, 7]),
        ({"won": "true"}, [0, 1, 3, 6]),
        ({"won": "false", "iteration": 1}, [2, 4, 5]),
        ({"stop_reason": "won"}, [0, 1, 3, 6]),
        ({"env": "turngym/Maze-v0", "iteration": 1, "won": "true"}, [0, 1, 3]),
        ({"env": "turngym/Other-v0"}, []),
        ({"q": "PANTRY"}, [7]),
        ({"q": "in the hall", "won": "true"}, [3]),
    ],
)
def test_filters_and_search(client: TestClient, params: dict, ids: list[int]) -> None:
    page = client.get("/api/trajectories", params=params).json()
    assert [i["id"] for i in page["items"]] == ids and page["total"] == len(ids)


def test_one_trajectory_shows_each_turns_credit_and_links_to_its_step_group(client: TestClient) -> None:
    traj = client.get("/api/trajectories/1").json()
    assert traj["estimator"] == "gigpo" and traj["line"] == 2 and traj["file"].endswith("iter_0001.jsonl.gz")
    # GiGPO's worked example (γ = 0.5): trajectory 2 of the group is s0 → s0 → s1, rewards 0, 0, 1
    assert [round(t["advantage"], 4) for t in traj["turns"]] == [0.2708, 0.5208, 0.3333]
    s0 = traj["turns"][0]["step_group"]
    assert s0["size"] == 4 and s0["members"] == [
        {"id": 0, "turn": 0},
        {"id": 1, "turn": 0},
        {"id": 1, "turn": 1},
        {"id": 2, "turn": 0},
    ]
    assert traj["turns"][2]["step_group"]["members"] == [{"id": 0, "turn": 1}, {"id": 1, "turn": 2}]
    assert [m["id"] for m in traj["group_members"]] == [0, 1, 2]
    turn = traj["turns"][0]
    assert (
        turn["anchor"] == "s0" and turn["observation"] == "You are in the s0." and turn["action"] == "go s0"
    )
    assert turn["tokens"] == [
        {"text": "go", "logprob": -0.25, "entropy": 0.5},
        {"text": " north", "logprob": -2.0, "entropy": 1.5},
    ]
    assert turn["salt_edge"] is None and not turn["parse_error"] and not turn["branch_point"]


def test_ids_in_a_later_file_link_to_that_file_and_branch_points_are_marked(client: TestClient) -> None:
    traj = client.get("/api/trajectories/7").json()
    assert traj["branch"] == {"parent": 0, "point": 1}
    assert [t["branch_point"] for t in traj["turns"]] == [False, True]
    assert traj["turns"][0]["step_group"]["members"] == [{"id": 6, "turn": 0}, {"id": 7, "turn": 0}]
    parse = client.get("/api/trajectories/4").json()["turns"][0]
    assert parse["parse_error"] and parse["invalid_action"]


def test_unknown_ids_and_bad_parameters_are_json_errors(client: TestClient) -> None:
    missing = client.get("/api/trajectories/8")
    assert missing.status_code == 404 and missing.json() == {
        "detail": "no trajectory with id 8; ids run from 0 to 7"
    }
    assert client.get("/api/trajectories/-1").status_code == 404
    assert client.get("/api/trajectories/abc").status_code == 422
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 10_000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"won": "maybe"}, "won"),
        ({"iteration": "x"}, "iteration"),
    ]:
        response = client.get("/api/trajectories", params=params)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", field]
    bad = client.get("/api/trajectories", params={"stop_reason": "exploded"})
    assert bad.status_code == 422 and "stop_reason must be one of" in bad.json()["detail"]


def test_malformed_lines_are_listed_and_the_rest_is_served(eval_jsonl: Path) -> None:
    client = TestClient(create_viewer_app(eval_jsonl))
    summary = client.get("/api/summary").json()
    assert summary["trajectories"] == 3 and summary["problems"] == 2 and summary["metrics"] is None
    problems = client.get("/api/problems").json()["items"]
    assert [(p["line"], p["file"]) for p in problems] == [(2, str(eval_jsonl)), (4, str(eval_jsonl))]
    assert "expected 'turns' to be a list" in problems[1]["error"]
    page = client.get("/api/trajectories").json()
    assert [(i["id"], i["task_id"]) for i in page["items"]] == [(0, "0"), (2, "1"), (4, "2")]
    bad = client.get("/api/trajectories/1")
    assert bad.status_code == 404 and "line 2" in bad.json()["detail"] and "malformed" in bad.json()["detail"]
    plain = client.get("/api/trajectories/2").json()  # an eval record: no credit, no tokens text
    assert plain["turns"][0]["advantage"] is None and plain["turns"][0]["step_group"] is None
    assert [t["text"] for t in plain["turns"][0]["tokens"]] == ["#7", "#8"]


def test_a_torn_gzip_file_keeps_the_lines_before_the_damage(tmp_path: Path, run_dir: Path) -> None:
    source = run_dir / "rollouts" / "iter_0001.jsonl.gz"
    data = gzip.compress(gzip.decompress(source.read_bytes()) * 50)
    torn = tmp_path / "torn.jsonl.gz"
    torn.write_bytes(data[: len(data) // 2] + b"\x00garbage" + data[len(data) // 2 + 8 :])
    store = TrajectoryStore([torn], checkpoint_bytes=10_000)
    assert 0 < len(store) < 300 and store.problems
    assert store.problems[-1].file == str(torn)


def test_charts_are_drawn_from_the_runs_metrics(client: TestClient) -> None:
    names = [c["name"] for c in client.get("/api/charts").json()["charts"]]
    assert names == ["success", "reward", "singleton_fraction"]
    png = client.get("/charts/success.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/charts/kl.png").status_code == 404  # no KL logged
    assert "no chart named" in client.get("/charts/nope.png").json()["detail"]
    assert [r["iteration"] for r in client.get("/api/metrics").json()["rows"]] == [0, 1, 2]


def test_the_page_and_its_assets_are_bundled(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    for asset in ("app.js", "style.css"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and "https://" not in response.text


def test_new_iterations_appear_while_the_viewer_runs(client: TestClient, run_dir: Path) -> None:
    assert client.get("/api/trajectories").json()["total"] == 8
    group = [episode(["hall"], [1], task=4), episode(["hall"], [0], task=4)]
    adv = credit.compute("gigpo", [group])
    write_rollouts(run_dir, 3, [group], [group], adv, estimator="gigpo", params={})
    page = client.get("/api/trajectories", params={"iteration": 3}).json()
    assert [i["id"] for i in page["items"]] == [8, 9]
    members = client.get("/api/trajectories/9").json()["turns"][0]["step_group"]["members"]
    assert members == [{"id": 8, "turn": 0}, {"id": 9, "turn": 0}]


def test_a_path_with_nothing_to_show_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ViewerError, match="does not exist"):
        resolve_source(tmp_path / "nope")
    with pytest.raises(ViewerError, match="holds no rollouts/"):
        resolve_source(tmp_path)


def test_without_matplotlib_the_charts_say_what_to_install(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    listed = client.get("/api/charts").json()
    assert listed["charts"] == [] and 'pip install -e ".[train]"' in listed["note"]
    response = client.get("/charts/success.png")
    assert response.status_code == 501 and "matplotlib" in response.json()["detail"]


def test_out_of_range_numbers_in_metadata_read_as_unknown(tmp_path: Path) -> None:
    odd = [
        episode(["a"], [1], iteration=10**12, policy_version=2**70),
        episode(["b"], [0], iteration=True, policy_version=-3),
    ]
    path = tmp_path / "odd.jsonl"
    write_jsonl(path, odd)
    items = TestClient(create_viewer_app(path)).get("/api/trajectories").json()["items"]
    assert [(i["iteration"], i["policy_version"]) for i in items] == [(None, None), (None, None)]
