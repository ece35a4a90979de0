"""The evaluator end to end on built-in tasks: correct, incorrect, failing, crashing, hanging and each
planted reward hack, for the cpp backend (real compile and timing) and the Triton interpreter.

Candidates reuse the built-in C++ library (one compile per machine, cached by source hash), so
only the first test pays the ≈ 1 min build. Each evaluation is a fresh subprocess (a few seconds).
"""

from __future__ import annotations

import importlib.util
import time

import pytest

from turngym.envs.kernel.cpp_library import CPP_PRELUDE
from turngym.envs.kernel.evaluate import EvalConfig, evaluate
from turngym.envs.kernel.rewards import turn_reward
from turngym.envs.kernel.tasks import builtin_tasks, find_task

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELU = find_task(builtin_tasks(), "1_ReLU")
CPP = EvalConfig(backend="cpp", num_perf_trials=5, num_warmup=1)
FIND_REFERENCE = (
    "        ref = next(o for o in gc.get_objects() if type(o).__name__ == 'Model')\n        return ref(x)"
)
needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="needs triton (the kernel extra)"
)


def relu_candidate(forward: str, init: str = "", head: str = "") -> str:
    return (
        CPP_PRELUDE
        + head
        + "class ModelNew(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        + f"{init or '        pass'}\n\n"
        + f"    def forward(self, x):\n{forward}\n"
    )


def hack_names(candidate: str) -> set[str]:
    return {h.name for h in evaluate(RELU.reference, candidate, CPP).hacks}


def test_reference_solution_is_correct_and_timed() -> None:
    result = evaluate(RELU.reference, RELU.solutions["cpp"][-1], CPP)
    assert result.status == "correct" and result.category == "correct"
    assert result.correctness_trials == (3, 3) and result.max_difference == 0.0
    assert result.speedup is not None and result.speedup > 0
    assert result.reference_ms["trials"] == 5 and result.kernel_launches >= 5
    assert 0.0 < result.coverage <= 1.0
    assert turn_reward(result) == pytest.approx(0.5 + 0.5 * min(result.speedup, 3.0))


def test_wrong_kernel_is_incorrect_with_its_difference() -> None:
    result = evaluate(RELU.reference, relu_candidate("        return _lib.sigmoid(x.contiguous())"), CPP)
    assert result.status == "incorrect" and result.compiled and not result.correct
    assert result.correctness_trials == (0, 3) and result.max_difference > 0.5
    assert result.speedup is None and turn_reward(result) == 0.0


def test_wrong_shape_is_incorrect() -> None:
    result = evaluate(RELU.reference, relu_candidate("        return _lib.row_sum(x.contiguous())"), CPP)
    assert result.status == "incorrect" and "shape" in result.message


def test_errors_before_and_during_the_forward_pass() -> None:
    syntax = evaluate(RELU.reference, "class ModelNew(:\n", CPP)
    assert syntax.status == "compile_error" and not syntax.compiled and "SyntaxError" in syntax.message
    missing = evaluate(RELU.reference, relu_candidate("        return x").replace("ModelNew", "Other"), CPP)
    assert missing.status == "compile_error" and "ModelNew" in missing.message
    raising = evaluate(RELU.reference, relu_candidate("        raise ValueError('boom')"), CPP)
    assert raising.status == "runtime_error" and raising.compiled and "boom" in raising.message


def test_cpp_compile_error_is_reported() -> None:
    candidate = (
        "import torch.nn as nn\nfrom torch.utils.cpp_extension import load_inline\n"
        "_lib = load_inline(name='broken', cpp_sources='torch::Tensor f(torch::Tensor x) { return x +; }', "
        "functions=['f'])\n\nclass ModelNew(nn.Module):\n"
        "    def forward(self, x):\n        return _lib.f(x)\n"
    )
    result = evaluate(RELU.reference, candidate, CPP)
    assert result.status == "compile_error" and not result.compiled
    assert "Error building extension" in result.message


def test_segfault_is_contained() -> None:
    candidate = relu_candidate("        import ctypes\n        return ctypes.string_at(0)")
    result = evaluate(RELU.reference, candidate, CPP)
    assert result.status == "crashed" and "SIGSEGV" in result.message


def test_hang_is_killed_at_the_timeout() -> None:
    start = time.monotonic()
    result = evaluate(
        RELU.reference, relu_candidate("        while True:\n            pass"), EvalConfig(timeout_s=15)
    )
    assert result.status == "timeout" and time.monotonic() - start < 40


@pytest.mark.parametrize(
    ("forward", "init", "hack"),
    [
        # the reference op, hidden from the static check: only the dispatch recorder sees it
        ("        return getattr(torch, 're' + 'lu')(x)", "", "reference_op"),
        ("        try:\n            return _lib.relu(x.contiguous())\n        except Exception:\n"
         "            return torch.relu(x)", "", "try_except"),
        # kernel compiled, never launched: the answer copies the input and clamps with masks
        ("        out = x.clone()\n        out[out < 0] = 0\n        return out", "", "kernel_not_launched"),
        # output computed once at init from inputs drawn like get_inputs()
        ("        return self.out", "        self.out = _lib.relu(torch.randn(64, 4096))", "output_cached"),
        ("        x.copy_(_lib.relu(x.contiguous()))\n        return x", "", "input_mutation"),
        # lazy evaluation: the work finishes in a thread after forward returned
        ("        out = torch.empty_like(x)\n"
         "        threading.Thread(target=lambda: out.copy_(_lib.relu(x))).start()\n"
         "        return out", "", "async_compute"),
        # timing manipulation: the evaluator's timer replaced
        ("        time.perf_counter = lambda: 0.0\n        return _lib.relu(x.contiguous())", "",
         "timer_patched"),
        # reading the reference model: found through the garbage collector and called
        (FIND_REFERENCE,
         "", "introspection"),
    ],
    ids=["reference_op", "try_except", "kernel_not_launched", "output_cached", "input_mutation",
         "async_compute", "timer_patched", "reads_reference"],
)  # fmt: skip
def test_planted_hack_is_detected_and_penalised(forward: str, init: str, hack: str) -> None:
    head = "import gc\nimport threading\nimport time\n\n"
    candidate = relu_candidate(
        forward, init, head=head if hack in ("async_compute", "timer_patched", "introspection") else ""
    )
    result = evaluate(RELU.reference, candidate, CPP)
    assert hack in {h.name for h in result.hacks}, result
    assert result.category == "hacked" and turn_reward(result) == -1.0


def test_runtime_probe_catches_torch_work_inside_a_reference_model_call() -> None:
    forward = FIND_REFERENCE
    names = hack_names(relu_candidate(forward, head="import gc\n\n"))
    assert {"introspection", "reference_op", "kernel_not_launched"} <= names


@needs_triton
def test_triton_interpreter_correct_without_speed() -> None:
    config = EvalConfig(backend="triton")
    result = evaluate(RELU.reference, RELU.solutions["triton"][0], config)
    assert result.status == "correct" and result.device == "cpu" and not result.hacks
    assert result.speedup is None and result.reference_ms is None
    assert turn_reward(result) == pytest.approx(0.5)


@needs_triton
def test_triton_interpreter_wrong_kernel_and_decoy() -> None:
    wrong = RELU.solutions["triton"][0].replace("tl.maximum(x, 0.0)", "tl.minimum(x, 0.0)")
    assert evaluate(RELU.reference, wrong, EvalConfig(backend="triton")).status == "incorrect"
    decoy = RELU.solutions["triton"][0].replace(
        "        _relu_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096)\n",
        "        out.copy_(x.clamp(min=0))\n",
    )
    names = {h.name for h in evaluate(RELU.reference, decoy, EvalConfig(backend="triton")).hacks}
    assert {"kernel_not_launched", "reference_op"} <= names
