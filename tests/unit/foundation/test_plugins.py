"""Third-party envs are discovered through the ``turngym.envs`` entry-point group, with no user import.

The test writes a tiny distribution into a temporary directory: a package and a real
``*.dist-info`` folder (``METADATA`` + ``entry_points.txt``), which is exactly what ``pip install``
leaves in ``site-packages``. A subprocess with that directory on ``PYTHONPATH`` then only imports
turngym (or runs the ``turngym`` command) and must find the package's env.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN_CODE = '''
"""A third-party env package (never imported by the user)."""

from turngym.envs import StepOutcome, TextEnv, register


class EchoEnv(TextEnv):
    """Repeat the word shown to win."""

    description = "repeat the word (third-party)"

    @property
    def num_tasks(self) -> int:
        return 3

    def _reset(self, task_id):
        self.word = ("alpha", "beta", "gamma")[task_id]
        return f"say {self.word}"

    def _step(self, action):
        won = action.strip() == self.word
        if not won:
            return StepOutcome(f"no, say {self.word}", invalid_action=True)
        return StepOutcome("yes", reward=1.0, terminated=True, won=True)

    def admissible_actions(self):
        return [self.word]

    def expert_action(self):
        return self.word


def register_envs() -> None:
    register("thirdparty/Echo-v0", "echo_plugin:EchoEnv", description=EchoEnv.description)
'''

BROKEN_PLUGIN_CODE = """
def register_envs() -> None:
    raise RuntimeError("this plugin is broken")
"""


def write_distribution(root: Path, name: str, code: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(code), encoding="utf-8")
    info = root / f"{name}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        f"[turngym.envs]\n{name} = {name}:register_envs\n", encoding="utf-8"
    )


def run(args: list[str], site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    write_distribution(tmp_path, "echo_plugin", PLUGIN_CODE)
    return tmp_path


def test_make_finds_a_plugin_env_without_importing_it(site: Path) -> None:
    script = (
        "import sys, turngym\n"
        "assert 'echo_plugin' not in sys.modules\n"
        "env = turngym.make('thirdparty/Echo-v0')\n"
        "obs, info = env.reset(seed=0, options={'task_id': 1})\n"
        "print(obs, env.step('beta')[1], type(env).__module__)\n"
    )
    result = run([sys.executable, "-c", script], site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "say beta 1.0 echo_plugin"


def test_plugin_env_is_listed_by_the_cli_and_passes_the_checker(site: Path) -> None:
    turngym_cmd = str(Path(sys.executable).with_name("turngym"))
    listed = run([turngym_cmd, "envs"], site)
    assert listed.returncode == 0, listed.stderr
    assert "thirdparty/Echo-v0" in listed.stdout
    assert "repeat the word (third-party)" in listed.stdout
    assert "turngym/Maze-v0" in listed.stdout
    checked = run([turngym_cmd, "check", "thirdparty/Echo-v0"], site)
    assert checked.returncode == 0, checked.stderr
    assert "ok thirdparty/Echo-v0 keeps the environment contract" in checked.stdout


def test_a_broken_plugin_warns_and_the_others_still_load(site: Path) -> None:
    write_distribution(site, "broken_plugin", BROKEN_PLUGIN_CODE)
    script = (
        "import warnings, turngym\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    ids = [i.id for i in turngym.list_envs()]\n"
        "print('thirdparty/Echo-v0' in ids, 'turngym/Maze-v0' in ids)\n"
        "print(*[str(w.message) for w in caught], sep='\\n')\n"
    )
    result = run([sys.executable, "-c", script], site)
    assert result.returncode == 0, result.stderr
    first, warning = result.stdout.strip().split("\n", 1)
    assert first == "True True"
    expected = "turngym plugin 'broken_plugin' (broken_plugin:register_envs) failed to register its envs"
    assert expected in warning
    assert "this plugin is broken" in warning
