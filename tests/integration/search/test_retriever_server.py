"""``turngym serve retriever`` as a real uvicorn process on 127.0.0.1, called over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from turngym.envs.search.env import SearchEnv

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(corpus: Path, index: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-c", "from turngym.cli import main; main()", "serve", "retriever"]
    args = ["--corpus", str(corpus), "--index", str(index), "--port", str(port), *extra]
    proc = subprocess.Popen([*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("retriever server did not become healthy within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    root = tmp_path_factory.mktemp("retriever")
    corpus, index = root / "kb.jsonl", root / "index"
    proc, url = _start(corpus, index, "--generate-kb")
    try:
        yield url, corpus, index
    finally:
        _stop(proc)


def test_search_r1_shaped_client_over_real_http(server: tuple[str, Path, Path]) -> None:
    url, _, _ = server
    payload = {"queries": ["Velmora founded", "capital"], "topk": 3, "return_scores": True}
    response = httpx.post(f"{url}/retrieve", json=payload, timeout=10)
    assert response.status_code == 200
    result = response.json()["result"]
    assert len(result) == 2 and len(result[1]) == 3
    for item in result[1]:
        assert set(item) == {"document", "score"}
        assert item["document"]["contents"].startswith('"' + item["document"]["title"] + '"\n')
    bad = httpx.post(f"{url}/retrieve", json={"queries": [], "topk": 3}, timeout=10)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "queries"
    huge = httpx.post(f"{url}/retrieve", content=b"x" * (2 << 20), timeout=10)
    assert huge.status_code == 413


def test_env_over_http_expert_reaches_95_percent(server: tuple[str, Path, Path]) -> None:
    url, _, _ = server
    env = SearchEnv(split="test", retriever_url=url)
    wins = 0
    for task in range(60):
        env.reset(seed=0, options={"task_id": task})
        while True:
            _, _, terminated, truncated, info = env.step(env.expert_action())
            if terminated or truncated:
                break
        wins += info["won"]
    env.close()
    assert wins / 60 >= 0.95


def test_concurrent_requests_all_succeed(server: tuple[str, Path, Path]) -> None:
    url, _, _ = server
    with httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(16) as pool:
        codes = list(
            pool.map(
                lambda i: http.post("/retrieve", json={"queries": [f"city {i}"], "topk": 2}).status_code,
                range(64),
            )
        )
    assert codes == [200] * 64


def test_second_start_loads_the_saved_index(server: tuple[str, Path, Path]) -> None:
    url, corpus, index = server
    saved = sorted(p.name for p in index.iterdir())
    assert "turngym_index.json" in saved
    mtimes = {p.name: p.stat().st_mtime_ns for p in index.iterdir()}
    proc, second = _start(corpus, index)
    try:
        query = {"queries": ["Velmora founded"], "topk": 3, "return_scores": True}
        assert (
            httpx.post(f"{second}/retrieve", json=query).json()
            == httpx.post(f"{url}/retrieve", json=query).json()
        )
    finally:
        _stop(proc)
    assert {p.name: p.stat().st_mtime_ns for p in index.iterdir()} == mtimes  # loaded, not rebuilt
