"""``turngym view``: trajectories with their credit signals in a local web page (see docs/viewer.md).

:mod:`~turngym.viewer.reader` reads lines of big (gzip) JSONL files by offset,
:mod:`~turngym.viewer.store` indexes and filters them, :mod:`~turngym.viewer.app` serves the JSON
API and the bundled page in ``static/``.
"""

from turngym.errors import ViewerError
from turngym.viewer.app import ViewerSource, create_viewer_app, resolve_source, trajectory_view
from turngym.viewer.store import Problem, TrajectoryStore

__all__ = [
    "Problem",
    "TrajectoryStore",
    "ViewerError",
    "ViewerSource",
    "create_viewer_app",
    "resolve_source",
    "trajectory_view",
]
