"""Sandboxes: run untrusted code away from the caller's process (local jailed workers, docker)."""

from turngym.sandboxes.api import LANGUAGES, STATUSES, ExecResult, RunRequest, Sandbox, run
from turngym.sandboxes.local import LocalConfig, LocalSandbox

__all__ = [
    "LANGUAGES",
    "STATUSES",
    "ExecResult",
    "LocalConfig",
    "LocalSandbox",
    "RunRequest",
    "Sandbox",
    "run",
]
