"""An env module whose top-level import of an optional dependency fails (for the registry tests)."""

import turngym_absent_dependency  # noqa: F401  # deliberately not installed

Env = None
