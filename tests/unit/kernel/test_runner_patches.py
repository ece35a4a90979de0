"""The runner's launch hooks can be installed twice in one process (the benchmark runs jobs in
process): the second install wraps the original, so extension names are hashed once (no rebuild)
and launches are counted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from turngym.envs.kernel.runner import LaunchCounter, _patch_load_inline, _patch_triton


def test_load_inline_patch_wraps_the_original_once(tmp_path: Path) -> None:
    cpp_extension = pytest.importorskip("torch.utils.cpp_extension")
    real = cpp_extension.load_inline
    try:
        _patch_load_inline(LaunchCounter(), tmp_path, "cpu")
        _patch_load_inline(LaunchCounter(), tmp_path, "cpu")
        assert cpp_extension.load_inline.__wrapped__ is real
    finally:
        cpp_extension.load_inline = real


@pytest.mark.slow
def test_triton_patch_counts_each_launch_once() -> None:
    interpreter = pytest.importorskip("triton.runtime.interpreter")
    import triton.runtime.jit as jit

    real = {cls: cls.run for cls in (jit.JITFunction, interpreter.InterpretedFunction)}
    try:
        _patch_triton(LaunchCounter())
        counter = LaunchCounter()
        _patch_triton(counter)
        for cls, run in real.items():
            assert cls.run.__wrapped__ is run
    finally:
        for cls, run in real.items():
            cls.run = run
