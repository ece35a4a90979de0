"""The trajectories behind ``turngym view``: an index over JSONL files that stay on disk.

A :class:`TrajectoryStore` scans its files once (:func:`~turngym.viewer.reader.scan_lines`) and
keeps, per non-blank line, its byte offset plus the few fields the list and its filters need
(env, iteration, group, task, outcome, return, stop reason, turns) in compact columns: some tens
of bytes a line, whatever the size of the observations. A page or one trajectory is read back from
disk when asked for. A line that is not a trajectory record (bad JSON, missing ``turns`` or
``stop_reason``, ...) is kept as a *problem* with the reason and the line number, and the rest of
the file is served.

Ids: line ``k`` (0-based, blank lines not counted) of file ``f`` is trajectory ``base[f] + k``,
so the ``[line, turn]`` references of a rollouts file (:mod:`turngym.trainers.rollout_log`) turn
into ids without a lookup. A run directory's ``rollouts/`` may grow while the viewer runs:
:meth:`TrajectoryStore.refresh` indexes files that appeared since.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from turngym.viewer.reader import CHECKPOINT_BYTES, ByteReader, scan_lines

ITERATION_FILE = re.compile(r"iter_(\d+)\.jsonl(\.gz)?$")
SEARCH_CACHE = 8
"""Text searches whose matching ids are remembered."""


@dataclass(frozen=True)
class Problem:
    """A line that is not a trajectory record."""

    file: str
    line: int
    """1-based line number among the file's non-blank lines."""
    error: str


class _Interner:
    def __init__(self) -> None:
        self.values: list[str] = []
        self.codes: dict[str, int] = {}

    def code(self, value: str) -> int:
        if value not in self.codes:
            self.codes[value] = len(self.values)
            self.values.append(value)
        return self.codes[value]


def _summary(record: Any) -> dict[str, Any]:
    """The indexed fields of one record; ``ValueError`` naming what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    for key, kind in (("turns", list), ("stop_reason", str)):
        if not isinstance(record.get(key), kind):
            raise ValueError(f"expected {key!r} to be a {kind.__name__}, got {record.get(key)!r:.60}")
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    rewards = [t.get("reward", 0.0) if isinstance(t, dict) else None for t in record["turns"]]
    if not all(isinstance(r, int | float) for r in rewards):
        raise ValueError("every turn must be an object with a numeric 'reward'")
    return {
        "env": str(record.get("env_id", "")),
        "task": str(record.get("task_id", "")),
        "stop": record["stop_reason"],
        "won": bool(record.get("won", False)),
        "return": float(sum(rewards)),
        "turns": len(rewards),
        "iteration": meta.get("iteration"),
        "group": meta.get("group"),
        "version": meta.get("policy_version"),
        "branched": bool(meta.get("branch")),
    }


class TrajectoryStore:
    """Index, filter, search and read the trajectories of some JSONL / ``.jsonl.gz`` files."""

    def __init__(self, files: Sequence[str | Path] = (), *, checkpoint_bytes: int = CHECKPOINT_BYTES) -> None:
        self.files: list[Path] = []
        self.readers: list[ByteReader] = []
        self.base: list[int] = []
        self.problems: list[Problem] = []
        self._checkpoint_bytes = checkpoint_bytes
        self._lock = threading.RLock()
        self._envs, self._stops, self._tasks, self._groups = (
            _Interner(),
            _Interner(),
            _Interner(),
            _Interner(),
        )
        self._cols: dict[str, array] = {
            "file": array("i"), "offset": array("q"), "length": array("q"), "ok": array("b"),
            "env": array("i"), "stop": array("i"), "task": array("i"), "group": array("i"),
            "won": array("b"), "return": array("d"), "turns": array("i"), "iteration": array("i"),
            "version": array("q"), "branched": array("b"),
        }  # fmt: skip
        self._np: dict[str, np.ndarray] | None = None
        self._searches: OrderedDict[str, np.ndarray] = OrderedDict()
        for path in files:
            self.add_file(path)

    def __len__(self) -> int:
        return len(self._cols["offset"])

    def add_file(self, path: str | Path) -> None:
        """Index ``path`` (streamed once; only offsets and summaries are kept)."""
        path = Path(path)
        match = ITERATION_FILE.search(path.name)
        file_iteration = int(match.group(1)) if match else -1
        with self._lock:
            reader = ByteReader.open(path, self._checkpoint_bytes)
            f = len(self.files)
            self.files.append(path)
            self.readers.append(reader)
            self.base.append(len(self))
            line = 0
            try:
                for offset, raw in scan_lines(reader, record=True):
                    line += 1
                    self._index_line(f, offset, raw, line, file_iteration)
            except (zlib.error, EOFError, OSError) as exc:
                self.problems.append(Problem(str(path), line + 1, f"unreadable from here on: {exc}"))
            self._np = None
            self._searches.clear()

    def _index_line(self, f: int, offset: int, raw: bytes, line: int, file_iteration: int) -> None:
        c = self._cols
        try:
            s = _summary(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            self.problems.append(Problem(str(self.files[f]), line, str(exc)))
            s = None
        c["file"].append(f)
        c["offset"].append(offset)
        c["length"].append(len(raw))
        c["ok"].append(s is not None)
        if s is None:
            for key in ("env", "stop", "task", "group", "turns", "iteration", "version"):
                c[key].append(-1)
            for key in ("won", "branched"):
                c[key].append(0)
            c["return"].append(0.0)
            return
        iteration = _count(s["iteration"], 31)
        iteration = file_iteration if iteration < 0 else iteration
        c["env"].append(self._envs.code(s["env"]))
        c["stop"].append(self._stops.code(s["stop"]))
        c["task"].append(self._tasks.code(s["task"]))
        group = s["group"]
        c["group"].append(-1 if group is None else self._groups.code(f"{f}\x00{group}"))
        c["won"].append(int(s["won"]))
        c["return"].append(s["return"])
        c["turns"].append(s["turns"])
        c["iteration"].append(iteration)
        c["version"].append(_count(s["version"], 63))
        c["branched"].append(int(s["branched"]))

    def columns(self) -> dict[str, np.ndarray]:
        """NumPy copies of the index columns, plus ``group_size`` / ``group_wins`` per group code
        (rebuilt after a file is added)."""
        with self._lock:
            if self._np is None:
                cols = {key: np.array(col) for key, col in self._cols.items()}
                grouped = cols["group"] >= 0
                n = len(self._groups.values)
                cols["group_size"] = np.bincount(cols["group"][grouped], minlength=n)
                cols["group_wins"] = np.bincount(
                    cols["group"][grouped], weights=cols["won"][grouped], minlength=n
                )
                self._np = cols
            return self._np

    # -- queries -------------------------------------------------------------------------------

    def facets(self) -> dict[str, Any]:
        """The values the filters can take, and the counts the page shows."""
        c = self.columns()
        ok = c["ok"].astype(bool)
        return {
            "files": [str(p) for p in self.files],
            "trajectories": int(ok.sum()),
            "problems": len(self.problems),
            "envs": sorted({self._envs.values[i] for i in np.unique(c["env"][ok])}),
            "stop_reasons": sorted({self._stops.values[i] for i in np.unique(c["stop"][ok])}),
            "iterations": [int(i) for i in np.unique(c["iteration"][ok]) if i >= 0],
        }

    def query(
        self,
        *,
        env: str | None = None,
        iteration: int | None = None,
        won: bool | None = None,
        stop_reason: str | None = None,
        q: str | None = None,
    ) -> np.ndarray:
        """Ids (ascending) of the trajectories that pass every given filter."""
        c = self.columns()
        mask = c["ok"].astype(bool)
        if env is not None:
            mask &= c["env"] == self._envs.codes.get(env, -2)
        if iteration is not None:
            mask &= c["iteration"] == iteration
        if won is not None:
            mask &= c["won"] == int(won)
        if stop_reason is not None:
            mask &= c["stop"] == self._stops.codes.get(stop_reason, -2)
        ids = np.flatnonzero(mask)
        if q:
            ids = ids[np.isin(ids, self._search(q))]
        return ids

    def _search(self, q: str) -> np.ndarray:
        """Ids whose observations or actions contain ``q`` (case-insensitive); one streaming pass
        per file, remembered for the last :data:`SEARCH_CACHE` queries."""
        with self._lock:
            if q in self._searches:
                self._searches.move_to_end(q)
                return self._searches[q]
        needle = q.lower()
        encoded = {json.dumps(needle, ensure_ascii=flag)[1:-1].encode() for flag in (False, True)}
        found: list[int] = []
        for f, reader in enumerate(list(self.readers)):
            for k, (_, raw) in enumerate(scan_lines(reader)):
                low = raw.lower()
                if any(e in low for e in encoded) and _text_contains(raw, needle):
                    found.append(self.base[f] + k)
        ids = np.asarray(found, dtype=np.int64)
        with self._lock:
            self._searches[q] = ids
            while len(self._searches) > SEARCH_CACHE:
                self._searches.popitem(last=False)
        return ids

    def summary(self, i: int) -> dict[str, Any]:
        """The list entry of trajectory ``i`` (from the index; nothing is read from disk)."""
        c = self.columns()
        group = int(c["group"][i])
        entry: dict[str, Any] = {
            "id": i,
            "env": self._envs.values[c["env"][i]],
            "task_id": self._tasks.values[c["task"][i]],
            "stop_reason": self._stops.values[c["stop"][i]],
            "won": bool(c["won"][i]),
            "return": float(c["return"][i]),
            "turns": int(c["turns"][i]),
            "iteration": int(c["iteration"][i]) if c["iteration"][i] >= 0 else None,
            "policy_version": int(c["version"][i]) if c["version"][i] >= 0 else None,
            "branched": bool(c["branched"][i]),
            "group": None,
        }
        if group >= 0:
            entry["group"] = {
                "key": self._groups.values[group].partition("\x00")[2],
                "size": int(c["group_size"][group]),
                "wins": int(c["group_wins"][group]),
            }
        return entry

    def group_members(self, i: int) -> np.ndarray:
        """Ids of the trajectories of ``i``'s group (itself included; just ``[i]`` without a group)."""
        c = self.columns()
        group = c["group"][i]
        return np.flatnonzero(c["group"] == group) if group >= 0 else np.asarray([i])

    def locate(self, i: int) -> tuple[int, int]:
        """``(file index, 0-based line)`` of trajectory ``i``."""
        f = int(self.columns()["file"][i])
        return f, i - self.base[f]

    def problem_of(self, i: int) -> Problem | None:
        """The problem of line ``i`` when it is not a trajectory record."""
        if bool(self.columns()["ok"][i]):
            return None
        f, k = self.locate(i)
        return next((p for p in self.problems if p.file == str(self.files[f]) and p.line == k + 1), None)

    def record(self, i: int) -> dict[str, Any]:
        """The JSON record of trajectory ``i``, read from disk."""
        c = self.columns()
        f = int(c["file"][i])
        raw = self.readers[f].read(int(c["offset"][i]), int(c["length"][i]))
        return dict(json.loads(raw))

    def refresh(self, paths: Sequence[Path]) -> int:
        """Index those of ``paths`` not indexed yet; returns how many were added."""
        with self._lock:
            known = set(self.files)
            new = [p for p in paths if p not in known]
            for path in new:
                self.add_file(path)
            return len(new)


def _count(value: Any, bits: int) -> int:
    """``value`` when it is an int in ``[0, 2**bits)`` (a column's range), else -1 (unknown)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**bits
    return int(value) if ok else -1


def _text_contains(raw: bytes, needle: str) -> bool:
    """Whether an observation or action of the record ``raw`` contains ``needle`` (lower case)."""
    try:
        record = json.loads(raw)
    except ValueError:
        return False
    return any(
        needle in str(t.get("observation", "")).lower() or needle in str(t.get("action", "")).lower()
        for t in record.get("turns", [])
        if isinstance(t, dict)
    )
