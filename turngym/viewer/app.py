"""The ``turngym view`` web app: a JSON API over a :class:`~turngym.viewer.store.TrajectoryStore`
and the bundled page that reads it.

Routes (every error is JSON with a ``detail`` that names the problem):

* ``GET /api/summary`` — files, counts, the values the filters take, whether charts exist.
* ``GET /api/trajectories?offset=&limit=&env=&iteration=&won=&stop_reason=&q=`` — a page of list
  entries (id, env, task, group with its size and wins, outcome, return, stop reason, turns) and
  ``total``, the number that pass the filters. ``q`` searches observation and action text.
* ``GET /api/trajectories/{id}`` — one trajectory: metadata, its group's other members, and per
  turn the observation, action, env and shaped reward, advantage, step group (its members as ids)
  or SALT edge, ARPO branch point, tokens with log-prob and entropy, invalid/parse-failure flags.
  404 for an id that is not there or is a malformed line (the reason is given).
* ``GET /api/problems`` — the lines that are not trajectory records, with file, line and reason.
* ``GET /api/metrics`` — the run's ``metrics.jsonl`` rows; ``GET /api/charts`` — the dashboard
  charts with data; ``GET /charts/{name}.png`` — one chart drawn from the current metrics.
* ``GET /`` — the page (``static/``: plain HTML, CSS and JavaScript, nothing from a CDN);
  ``GET /health`` — ``{"status": "ok"}``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from turngym.errors import ViewerError
from turngym.trajectory import StopReason
from turngym.viewer.store import TrajectoryStore

STATIC = Path(__file__).parent / "static"
MAX_LIMIT = 500
NO_MATPLOTLIB = 'charts need matplotlib: pip install -e ".[train]" in the turngym checkout'


@dataclass(frozen=True)
class ViewerSource:
    """What ``turngym view PATH`` serves."""

    files: tuple[Path, ...]
    rollouts_dir: Path | None
    """A folder whose new ``iter_*.jsonl.gz`` files are picked up while the viewer runs."""
    metrics: Path | None
    """The run's ``metrics.jsonl``, when there is one."""


def _rollout_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")) and p.is_file())


def resolve_source(path: str | Path) -> ViewerSource:
    """A run directory (its ``rollouts/``), a folder of JSONL files, or one ``.jsonl``/``.jsonl.gz``."""
    p = Path(path)
    if p.is_file():
        metrics = next(
            (m for m in (p.parent / "metrics.jsonl", p.parent.parent / "metrics.jsonl") if m.is_file()), None
        )
        return ViewerSource((p,), None, metrics)
    if not p.is_dir():
        raise ViewerError(f"{p} does not exist; give a run directory or a .jsonl / .jsonl.gz file")
    folder = p / "rollouts" if (p / "rollouts").is_dir() else p
    files = _rollout_files(folder)
    metrics = p / "metrics.jsonl" if (p / "metrics.jsonl").is_file() else None
    if not files and metrics is None:
        raise ViewerError(
            f"{p} holds no rollouts/ and no .jsonl files; train with rollouts_every >= 1, or give a "
            "JSONL file written by turngym eval --out"
        )
    return ViewerSource(tuple(files), folder, metrics)


def _anchor_text(anchor: Any) -> str | None:
    if anchor is None:
        return None
    if isinstance(anchor, dict) and set(anchor) == {"__tuple__"}:
        return "(" + ", ".join(str(_anchor_text(a)) for a in anchor["__tuple__"]) + ")"
    return anchor if isinstance(anchor, str) else json.dumps(anchor)


def _links(entry: Any, base: int) -> dict[str, Any] | None:
    """A step group / edge record with its ``[line, turn]`` members turned into ``{id, turn}``."""
    if not isinstance(entry, Mapping):
        return None
    members = [{"id": base + int(m[0]), "turn": int(m[1])} for m in entry.get("members", [])]
    return {**{k: v for k, v in entry.items() if k != "members"}, "members": members}


def _tokens(turn: Mapping[str, Any], info: Mapping[str, Any]) -> list[dict[str, Any]]:
    ids = turn.get("action_ids") or []
    texts = info.get("token_text") or [f"#{i}" for i in ids]
    logprobs = turn.get("action_logprobs") or []
    entropies = turn.get("action_entropies") or []
    return [
        {
            "text": text,
            "logprob": logprobs[k] if k < len(logprobs) else None,
            "entropy": entropies[k] if k < len(entropies) else None,
        }
        for k, text in enumerate(texts)
    ]


def trajectory_view(store: TrajectoryStore, i: int) -> dict[str, Any]:
    """The detail of trajectory ``i`` as the page shows it (see the module docstring)."""
    record = store.record(i)
    f, line = store.locate(i)
    base = store.base[f]
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    branch = meta.get("branch")
    point = branch.get("point") if isinstance(branch, dict) else None
    turns = []
    for t, turn in enumerate(record["turns"]):
        info = turn.get("info") if isinstance(turn.get("info"), dict) else {}
        credit = info.get("credit") if isinstance(info.get("credit"), dict) else {}
        turns.append(
            {
                "index": t,
                "observation": turn.get("observation", ""),
                "action": turn.get("action", ""),
                "reward": turn.get("reward"),
                "shaped_reward": credit.get("reward"),
                "advantage": credit.get("advantage"),
                "anchor": _anchor_text(turn.get("anchor")),
                "invalid_action": bool(info.get("invalid_action")),
                "parse_error": bool(info.get("parse_error")),
                "finish_reason": info.get("finish_reason"),
                "step_group": _links(credit.get("step_group"), base),
                "salt_edge": _links(credit.get("salt_edge"), base),
                "branch_point": point is not None and point == t,
                "tokens": _tokens(turn, info),
                "info": {k: v for k, v in info.items() if k not in ("credit", "token_text")},
            }
        )
    summary = store.summary(i)
    return {
        **summary,
        "file": str(store.files[f]),
        "line": line + 1,
        "seed": record.get("seed"),
        "context_mode": record.get("context_mode"),
        "estimator": meta.get("estimator"),
        "branch": branch,
        "metadata": meta,
        "group_members": [store.summary(int(m)) for m in store.group_members(i)],
        "turns": turns,
    }


def create_viewer_app(source: ViewerSource | str | Path, store: TrajectoryStore | None = None) -> FastAPI:
    """The app serving ``source`` (a :class:`ViewerSource` or a path :func:`resolve_source` takes)."""
    src = source if isinstance(source, ViewerSource) else resolve_source(source)
    store = store if store is not None else TrajectoryStore(src.files)
    app = FastAPI(title="turngym view", docs_url="/api/docs", openapi_url="/api/openapi.json")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    _add_trajectory_routes(app, src, store)
    _add_metric_routes(app, src)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_trajectory_routes(app: FastAPI, src: ViewerSource, store: TrajectoryStore) -> None:
    """``/api/summary``, ``/api/trajectories``, ``/api/trajectories/{id}`` and ``/api/problems``."""

    def refresh() -> None:
        if src.rollouts_dir is not None and src.rollouts_dir.is_dir():
            store.refresh(_rollout_files(src.rollouts_dir))

    @app.get("/api/summary")
    def summary() -> dict[str, Any]:
        refresh()
        return {**store.facets(), "metrics": str(src.metrics) if src.metrics else None}

    @app.get("/api/trajectories")
    def trajectories(
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        env: str | None = None,
        iteration: Annotated[int | None, Query(ge=0)] = None,
        won: bool | None = None,
        stop_reason: str | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        reasons = [r.value for r in StopReason]
        if stop_reason is not None and stop_reason not in reasons:
            raise HTTPException(422, f"stop_reason must be one of {reasons}, got {stop_reason!r}")
        refresh()
        ids = store.query(env=env, iteration=iteration, won=won, stop_reason=stop_reason, q=q or None)
        page = ids[offset : offset + limit]
        return {
            "total": len(ids),
            "offset": offset,
            "limit": limit,
            "items": [store.summary(int(i)) for i in page],
            "problems": len(store.problems),
        }

    @app.get("/api/trajectories/{trajectory_id}")
    def trajectory(trajectory_id: int) -> dict[str, Any]:
        if not 0 <= trajectory_id < len(store):
            raise HTTPException(
                404, f"no trajectory with id {trajectory_id}; ids run from 0 to {len(store) - 1}"
            )
        problem = store.problem_of(trajectory_id)
        if problem is not None:
            raise HTTPException(
                404,
                f"id {trajectory_id} is line {problem.line} of {problem.file}, which is malformed: "
                f"{problem.error}",
            )
        return trajectory_view(store, trajectory_id)

    @app.get("/api/problems")
    def problems() -> dict[str, Any]:
        items = [{"file": p.file, "line": p.line, "error": p.error} for p in store.problems]
        return {"total": len(items), "items": items}


def _add_metric_routes(app: FastAPI, src: ViewerSource) -> None:
    """``/api/metrics``, ``/api/charts`` and ``/charts/{name}.png``."""
    charts_cache: dict[str, tuple[float, bytes]] = {}

    @app.get("/api/metrics")
    def metrics() -> dict[str, Any]:
        return {"rows": _metric_rows(src)}

    @app.get("/api/charts")
    def charts() -> dict[str, Any]:
        if importlib.util.find_spec("matplotlib") is None:
            return {"charts": [], "note": NO_MATPLOTLIB}
        return {"charts": [{"name": n, "url": f"/charts/{n}.png"} for n in _charts_with_data(src)]}

    @app.get("/charts/{name}.png")
    def chart(name: str) -> Response:
        from turngym.trainers.dashboard import get_chart, has_data, render_chart

        try:
            spec = get_chart(name)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        if importlib.util.find_spec("matplotlib") is None:
            raise HTTPException(501, NO_MATPLOTLIB)
        rows = _metric_rows(src)
        if not has_data(rows, spec):
            raise HTTPException(
                404, f"chart {name!r} has no data: the run logged none of {list(spec.metrics)}"
            )
        stamp = src.metrics.stat().st_mtime if src.metrics else 0.0
        if name not in charts_cache or charts_cache[name][0] != stamp:
            charts_cache[name] = (stamp, render_chart(rows, spec))
        return Response(charts_cache[name][1], media_type="image/png")


def _metric_rows(src: ViewerSource) -> list[dict[str, Any]]:
    """The rows of the run's ``metrics.jsonl`` (none when it has none)."""
    if src.metrics is None or not src.metrics.is_file():
        return []
    rows = []
    for line in src.metrics.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            continue
    return rows


def _charts_with_data(src: ViewerSource) -> list[str]:
    from turngym.trainers.dashboard import CHARTS, has_data

    rows = _metric_rows(src)
    return [c.name for c in CHARTS if has_data(rows, c)]
