"""The evaluation child process: ``python -m turngym.envs.kernel.runner JOB.json RESULT.json``.

:func:`turngym.envs.kernel.evaluate.evaluate` starts one per evaluation, so a crash, a hang or a
device fault in the candidate ends this process only. Steps (KernelBench's
``eval_kernel_against_ref``, with KernelGYM's runtime checks):

1. exec the reference and the candidate, each in its own module object (not in ``sys.modules``),
   with ``load_inline`` wrapped so builds are cached by source hash and every call into the
   extension is counted and timed (Triton launches likewise);
2. build ``Model`` and ``ModelNew`` under the same seed;
3. a probe forward pass under an aten dispatch recorder: compute ops → ``reference_op``; no
   custom-kernel launch → ``kernel_not_launched``; changed inputs → ``input_mutation``; a new
   live thread or a non-plain tensor → ``async_compute``;
4. correctness on ``num_correct_trials`` fresh input sets (trial seeds drawn from ``seed``), the
   candidate running *before* the reference on each set; ``allclose(atol, rtol)``; equal candidate
   outputs where the reference's differ → ``output_cached``;
5. timing (only when correct): warm-up, then trials with a cache flush before each, the first
   discarded; CUDA events on a GPU, ``perf_counter`` on CPU; the same for the reference; a speedup
   above ``recheck_speedup_above`` is measured again and the lower one kept;
6. the evaluator's own timers are checked for replacement (``timer_patched``).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
import types
from pathlib import Path
from typing import Any

from turngym.envs.kernel.timing import LaunchCounter, measure, sync


def _patch_load_inline(counter: LaunchCounter, build_root: Path, device: str) -> None:
    """Cache builds by source hash under ``build_root`` and count extension calls."""
    import torch.utils.cpp_extension as cpp_extension

    # unwrap an earlier patch (run_job called twice in one process) so names are hashed once
    original = getattr(cpp_extension.load_inline, "__wrapped__", cpp_extension.load_inline)

    def load_inline(name: str, cpp_sources: Any, cuda_sources: Any = None, functions: Any = None, **kw: Any):
        if cuda_sources and device != "cuda":
            raise RuntimeError("cuda_sources given but no CUDA device is present; use the cpp backend")
        key = json.dumps(
            [name, cpp_sources, cuda_sources, functions, kw.get("extra_cflags"), kw.get("extra_cuda_cflags")],
            sort_keys=True,
            default=str,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        cached_name = f"{name}_{digest}"
        build_dir = build_root / cached_name
        build_dir.mkdir(parents=True, exist_ok=True)
        kw.pop("build_directory", None)
        module = original(
            cached_name,
            cpp_sources,
            cuda_sources=cuda_sources,
            functions=functions,
            build_directory=str(build_dir),
            **kw,
        )
        proxy = types.ModuleType(name)
        for attr in dir(module):
            value = getattr(module, attr)
            setattr(
                proxy, attr, counter.wrap(value) if callable(value) and not attr.startswith("_") else value
            )
        return proxy

    load_inline.__wrapped__ = original  # type: ignore[attr-defined]
    cpp_extension.load_inline = load_inline


def _patch_triton(counter: LaunchCounter) -> None:
    """Count Triton kernel launches (compiled and interpreted)."""
    import triton.runtime.interpreter as interpreter
    import triton.runtime.jit as jit

    for cls in (jit.JITFunction, interpreter.InterpretedFunction):
        cls.run = counter.wrap(getattr(cls.run, "__wrapped__", cls.run))


def _exec_module(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    return []


def _to(value: Any, device: str) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list | tuple):
        return type(value)(_to(v, device) for v in value)
    return value


def _clone(values: list[Any]) -> list[Any]:
    import torch

    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


class _Verdict(Exception):
    """Stops the evaluation with a finished result."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(fields.get("status", ""))
        self.fields = fields


def _error_text(exc: BaseException, limit: int = 2000) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _probe(new_model: Any, inputs: list[Any], counter: LaunchCounter, backend: str) -> list[dict[str, str]]:
    """One forward pass watched by the dispatch recorder and the launch counter."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from turngym.envs.kernel.hacks import compute_ops

    seen: list[str] = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    before = _clone(inputs)
    threads = threading.active_count()
    calls = counter.calls
    with torch.no_grad(), Recorder():
        out = new_model(*inputs)
    findings = []
    ops = compute_ops(seen)
    if ops:
        findings.append({"name": "reference_op", "detail": f"PyTorch ran compute ops: {', '.join(ops)}"})
    if counter.calls == calls:
        findings.append(
            {"name": "kernel_not_launched", "detail": f"the forward pass launched no {backend} kernel"}
        )
    changed = [i for i, (a, b) in enumerate(zip(before, inputs, strict=True)) if not _same(a, b)]
    if changed:
        findings.append({"name": "input_mutation", "detail": f"forward changed input(s) {changed} in place"})
    if threading.active_count() > threads:
        findings.append({"name": "async_compute", "detail": "forward left a background thread running"})
    odd = {type(t).__name__ for t in _tensors(out) if type(t) is not torch.Tensor}
    if odd or not _tensors(out):
        detail = f"forward returned {', '.join(sorted(odd)) or type(out).__name__}, not plain tensors"
        findings.append({"name": "async_compute", "detail": detail})
    return findings


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return bool(a.shape == b.shape and torch.equal(a, b))
    return True


def _compare(ref_out: Any, new_out: Any, atol: float, rtol: float) -> tuple[bool, float, float, str]:
    """(allclose, max |diff|, mean |diff|, why not) over every output tensor."""
    import torch

    refs, news = _tensors(ref_out), _tensors(new_out)
    if len(refs) != len(news):
        return False, float("inf"), float("inf"), f"expected {len(refs)} output tensors, got {len(news)}"
    worst, total, count = 0.0, 0.0, 0
    ok = True
    for r, n in zip(refs, news, strict=True):
        if tuple(r.shape) != tuple(n.shape):
            return (
                False,
                float("inf"),
                float("inf"),
                f"output shape {tuple(n.shape)}, expected {tuple(r.shape)}",
            )
        diff = (r.float() - n.detach().float()).abs()
        if not bool(torch.isfinite(diff).all()):
            return False, float("inf"), float("inf"), "output has nan or inf where the reference does not"
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
        total += float(diff.sum())
        count += diff.numel()
        ok = ok and bool(torch.allclose(r.float(), n.detach().float(), atol=atol, rtol=rtol))
    return ok, worst, total / max(count, 1), "" if ok else "values differ beyond the tolerance"


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one candidate; returns the fields of an :class:`~turngym.envs.kernel.evaluate.EvalResult`."""
    result: dict[str, Any] = {"compiled": False, "correct": False, "hacks": []}
    try:
        _run(job, result)
    except _Verdict as verdict:
        result.update(verdict.fields)
    except Exception as exc:  # the candidate broke something the steps above do not guard
        result.update(status="runtime_error", message=_error_text(exc))
    return result


def _run(job: dict[str, Any], result: dict[str, Any]) -> None:
    import torch

    device = job["device"]
    torch.set_num_threads(int(job["threads"]))
    counter = LaunchCounter()
    build_root = Path(job["build_dir"])
    build_root.mkdir(parents=True, exist_ok=True)
    _patch_load_inline(counter, build_root, device)
    if job["backend"] == "triton":
        _patch_triton(counter)
    clocks = (time.perf_counter, torch.cuda.synchronize, torch.cuda.Event)
    try:
        reference = _exec_module(job["reference"], "turngym_kernel_reference")
    except Exception as exc:
        raise _Verdict(
            status="reference_error", message=f"the task's reference failed: {_error_text(exc)}"
        ) from exc
    try:
        candidate = _exec_module(job["candidate"], "turngym_kernel_candidate")
    except Exception as exc:
        raise _Verdict(status="compile_error", message=_error_text(exc)) from exc
    if not isinstance(getattr(candidate, "ModelNew", None), type):
        raise _Verdict(status="compile_error", message="the answer defines no class ModelNew")
    result["compiled"] = True
    seed = int(job["seed"])
    init = _to(reference.get_init_inputs(), device)
    torch.manual_seed(seed)
    ref_model = reference.Model(*init).to(device).eval()
    try:
        torch.manual_seed(seed)
        new_model = candidate.ModelNew(*init).to(device).eval()
    except Exception as exc:
        raise _Verdict(status="runtime_error", message=f"ModelNew(...) failed: {_error_text(exc)}") from exc

    generator = torch.Generator().manual_seed(seed)
    trial_seeds = [
        int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        for _ in range(job["num_correct_trials"] + 1)
    ]

    def inputs_for(trial_seed: int) -> list[Any]:
        torch.manual_seed(trial_seed)
        return list(_to(reference.get_inputs(), device))

    try:
        findings = _probe(new_model, inputs_for(trial_seeds[0]), counter, job["backend"])
    except Exception as exc:
        raise _Verdict(status="runtime_error", message=f"forward failed: {_error_text(exc)}") from exc
    result["hacks"].extend(findings)

    passed, worst, mean_diffs, why = 0, 0.0, [], ""
    outputs: list[tuple[Any, Any]] = []
    for trial_seed in trial_seeds[1:]:
        inputs = inputs_for(trial_seed)
        try:
            with torch.no_grad():
                new_out = new_model(*_clone(inputs))
                sync(device)
        except Exception as exc:
            raise _Verdict(status="runtime_error", message=f"forward failed: {_error_text(exc)}") from exc
        with torch.no_grad():
            ref_out = ref_model(*_clone(inputs))
        ok, diff, mean, reason = _compare(ref_out, new_out, job["atol"], job["rtol"])
        passed += ok
        worst, why = max(worst, diff), why or reason
        mean_diffs.append(mean)
        if len(outputs) < 2:
            outputs.append((_tensors(ref_out), [t.detach().clone() for t in _tensors(new_out)]))
    if len(outputs) == 2:
        (ref_a, new_a), (ref_b, new_b) = outputs
        same_new = all(_same(a, b) for a, b in zip(new_a, new_b, strict=False))
        same_ref = all(_same(a, b) for a, b in zip(ref_a, ref_b, strict=False))
        if same_new and not same_ref:
            result["hacks"].append(
                {"name": "output_cached", "detail": "the same output for different inputs"}
            )
    total = job["num_correct_trials"]
    result.update(
        correctness_trials=[passed, total],
        max_difference=worst,
        avg_difference=sum(mean_diffs) / max(len(mean_diffs), 1),
        correct=passed == total,
        status="correct" if passed == total else "incorrect",
        message="" if passed == total else f"{total - passed} of {total} input sets failed: {why}",
    )
    if result["correct"] and job["measure_performance"]:
        measure(job, result, ref_model, new_model, inputs_for(trial_seeds[-1]), counter)
    if (time.perf_counter, torch.cuda.synchronize, torch.cuda.Event) != clocks:
        result["hacks"].append({"name": "timer_patched", "detail": "a timer or synchronize was replaced"})


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the process that started this one dies (a killed server worker)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    """Read the job file, evaluate, write the result file."""
    job_path, result_path = (argv or sys.argv[1:])[:2]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a segfaulting candidate leaves no core file
    _die_with_parent()
    job = json.loads(Path(job_path).read_text())
    result = run_job(job)
    Path(result_path).write_text(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: a candidate's threads or atexit hooks cannot hang it


if __name__ == "__main__":
    main()
