"""Evaluate a candidate ``ModelNew`` against a KernelBench task, each run in its own subprocess.

:func:`evaluate` checks the candidate's source (syntax, ``ModelNew``, the static hacking rules of
:mod:`hacks`) here, then runs the job in a child process in a new session with a wall-clock
timeout: on CPU a child forked from a pre-started zygote that has imported torch
(:mod:`~turngym.envs.kernel.zygote`, ``isolation="zygote"``, the default), on CUDA (which cannot be
used in a child forked after its parent initialised it) or with ``isolation="process"`` a fresh
``python -m turngym.envs.kernel.runner``. Either way a crash, a segfault or a hang ends that child
only (status ``crashed`` or ``timeout``) and the caller goes on. The runner compiles, checks
correctness on fresh random inputs and times the candidate against the eager reference (see its
docstring).

Backends and devices: ``cpp`` (``load_inline`` C++ on CPU, real timing), ``triton`` (on a GPU; on
CPU through the Triton interpreter, ``TRITON_INTERPRET=1``, correctness only: no speed is
reported because the interpreter's speed says nothing about the kernel's), ``cuda`` (CUDA
``load_inline`` extensions; GPU only). Builds are cached by source hash under ``build_dir``
(default ``$TURNGYM_KERNEL_BUILD_DIR`` or ``~/.cache/turngym/kernels``).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from turngym.envs.kernel.hacks import HackFinding, static_findings
from turngym.envs.kernel.tasks import BACKENDS
from turngym.envs.kernel.zygote import POOL, ZygoteError
from turngym.errors import ConfigError

STATUSES = (
    "correct", "incorrect", "compile_error", "runtime_error", "timeout", "crashed", "reference_error",
)  # fmt: skip
"""Verdicts of an evaluation (hack findings are reported beside the verdict)."""

Device = Literal["auto", "cpu", "cuda"]


def default_build_dir() -> Path:
    """Where compiled extensions are cached."""
    env = os.environ.get("TURNGYM_KERNEL_BUILD_DIR")
    return Path(env) if env else Path.home() / ".cache" / "turngym" / "kernels"


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False without torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class EvalConfig:
    """How one candidate is evaluated (defaults: KernelGYM's tolerances, fewer trials for CPUs)."""

    backend: str = "cpp"
    """Kernel language of the answer: ``cpp``, ``triton`` or ``cuda``."""
    device: Device = "auto"
    """``auto``: CUDA when a GPU is present and the backend is not ``cpp``, else CPU."""
    num_correct_trials: int = 3
    """Fresh random input sets the candidate must match the reference on (KernelBench uses 5)."""
    num_perf_trials: int = 20
    """Timed forward calls after warm-up (KernelBench uses 100 on GPUs)."""
    num_warmup: int = 3
    """Untimed forward calls before timing."""
    atol: float = 1e-2
    """Absolute tolerance of ``allclose`` (KernelGYM: 1e-2)."""
    rtol: float = 1e-2
    """Relative tolerance of ``allclose`` (KernelGYM: 1e-2)."""
    timeout_s: float = 180.0
    """Wall-clock limit of the whole evaluation, compilation included (KernelBench: 180 s)."""
    measure_performance: bool = True
    """Time correct candidates (off: correctness only)."""
    reference_backend: Literal["eager", "compile"] = "eager"
    """Baseline: the eager reference, or the reference under ``torch.compile``."""
    recheck_speedup_above: float = 3.0
    """Speedups above this are measured a second time and the lower kept (KernelGYM: its cap, 3.0)."""
    seed: int = 42
    """Seeds the model weights and the trial input seeds (KernelBench: 42)."""
    threads: int = 1
    """CPU threads for torch in the child (1: single-threaded kernels are compared fairly)."""
    flush_mb: int = 32
    """Size of the buffer written before each timed trial to flush caches (GPU: at least 256)."""
    build_dir: str | None = None
    """Extension build cache; ``None``: :func:`default_build_dir`."""
    isolation: Literal["zygote", "process"] = "zygote"
    """``zygote``: a child forked from a pre-started process that has imported torch (CPU only; on
    ``cuda`` a fresh process is used, see :mod:`zygote`); ``process``: a fresh interpreter each time."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.num_correct_trials < 2:
            raise ConfigError(
                "num_correct_trials must be at least 2 (cached outputs are found by comparing two)"
            )
        if self.num_perf_trials < 1 or self.num_warmup < 0 or self.timeout_s <= 0:
            raise ConfigError("num_perf_trials must be >= 1, num_warmup >= 0 and timeout_s > 0")
        if self.reference_backend not in ("eager", "compile"):
            raise ConfigError(f"reference_backend must be eager or compile, got {self.reference_backend!r}")
        if self.isolation not in ("zygote", "process"):
            raise ConfigError(f"isolation must be zygote or process, got {self.isolation!r}")

    def resolved_device(self) -> str:
        """The device the evaluation runs on."""
        if self.device != "auto":
            return self.device
        return "cuda" if self.backend != "cpp" and cuda_available() else "cpu"

    def timing_reported(self) -> bool:
        """False for Triton on CPU (the interpreter's speed is not the kernel's)."""
        return self.measure_performance and not (self.backend == "triton" and self.resolved_device() == "cpu")


@dataclass(frozen=True)
class EvalResult:
    """The outcome of one evaluation (the fields KernelGYM's EvaluationResponse carries, CPU-aware)."""

    status: str
    """One of :data:`STATUSES`."""
    compiled: bool = False
    """The answer parsed, defined ``ModelNew`` and its kernels built."""
    correct: bool = False
    """Every input set matched the reference within the tolerances."""
    hacks: tuple[HackFinding, ...] = ()
    """Reward-hacking findings (any finding means a penalty)."""
    correctness_trials: tuple[int, int] = (0, 0)
    """(passed, total) input sets."""
    max_difference: float | None = None
    """Largest |reference − candidate| over the input sets."""
    avg_difference: float | None = None
    """Mean |reference − candidate|."""
    reference_ms: dict[str, float] | None = None
    """Reference timing stats (mean, median, std, min, max, trials) in milliseconds."""
    kernel_ms: dict[str, float] | None = None
    """Candidate timing stats in milliseconds."""
    speedup: float | None = None
    """reference median / candidate median time; ``None`` when not timed (incorrect, Triton on CPU)."""
    coverage: float | None = None
    """Share of the candidate's time spent in its own kernels (profiling-based reward input)."""
    kernel_launches: int = 0
    """Custom-kernel calls during the timed trials."""
    message: str = ""
    """Error text or the reason for a failed check."""
    backend: str = "cpp"
    """The backend evaluated."""
    device: str = "cpu"
    """Where it ran."""
    wall_s: float = 0.0
    """Wall time of the evaluation, process start included."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else a server adds (job id, worker)."""

    @property
    def hacked(self) -> bool:
        """At least one reward-hacking finding."""
        return bool(self.hacks)

    @property
    def category(self) -> str:
        """The feedback category: ``hacked`` when there are findings and it compiled, else the status."""
        return "hacked" if self.hacks and self.compiled else self.status

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``hacks`` as a list of ``{name, detail}``)."""
        out = asdict(self)
        out["hacks"] = [h.to_dict() for h in self.hacks]
        out["correctness_trials"] = list(self.correctness_trials)
        out["category"] = self.category
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        fields["hacks"] = tuple(HackFinding(h["name"], h["detail"]) for h in data.get("hacks", ()))
        fields["correctness_trials"] = tuple(data.get("correctness_trials", (0, 0)))
        return cls(**fields)


def _precheck(candidate: str, config: EvalConfig) -> tuple[EvalResult | None, list[HackFinding]]:
    """Syntax and ``ModelNew`` checks plus static findings; a result when there is no point in running."""
    try:
        tree = ast.parse(candidate)
    except SyntaxError as exc:
        message = f"SyntaxError: {exc.msg} (line {exc.lineno})"
        return EvalResult("compile_error", message=message, backend=config.backend), []
    if not any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body):
        message = "the answer defines no class ModelNew at module level"
        return EvalResult("compile_error", message=message, backend=config.backend), []
    return None, static_findings(candidate, config.backend)


def evaluate(reference: str, candidate: str, config: EvalConfig | None = None) -> EvalResult:
    """Evaluate ``candidate`` (source defining ``ModelNew``) against ``reference`` (a task's source)."""
    config = config or EvalConfig()
    start = time.perf_counter()
    early, static = _precheck(candidate, config)
    device = config.resolved_device()
    if early is not None:
        return replace(early, device=device, wall_s=time.perf_counter() - start)
    job = {
        **asdict(config),
        "device": device,
        "reference": reference,
        "candidate": candidate,
        "build_dir": str(Path(config.build_dir) if config.build_dir else default_build_dir()),
        "measure_performance": config.timing_reported(),
        "flush_mb": max(config.flush_mb, 256) if device == "cuda" else config.flush_mb,
    }
    fields = _run_child(job, config)
    runtime = tuple(HackFinding(h["name"], h["detail"]) for h in fields.pop("hacks", ()))
    fields["hacks"] = _merge(static, runtime)
    fields.update(backend=config.backend, device=device, wall_s=time.perf_counter() - start)
    return EvalResult.from_dict(fields)


def _merge(static: list[HackFinding], runtime: tuple[HackFinding, ...]) -> list[dict[str, str]]:
    seen: dict[str, HackFinding] = {}
    for finding in [*static, *runtime]:
        seen.setdefault(finding.name, finding)
    return [f.to_dict() for f in seen.values()]


def start_zygote() -> None:
    """Start this process's first evaluation zygote now, so the first evaluation does not wait for it."""
    zygote = POOL.acquire(_child_env(EvalConfig(), "cpu"))
    try:
        zygote.ensure_started()
    finally:
        zygote.lock.release()


def _child_env(config: EvalConfig, device: str) -> dict[str, str]:
    env = _base_env()
    env["OMP_NUM_THREADS"] = str(config.threads)
    if config.backend == "triton" and device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    return env


def _base_env() -> dict[str, str]:
    """This process's environment with the repository on ``PYTHONPATH``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _run_child(job: dict[str, Any], config: EvalConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="turngym-kernel-") as tmp:
        job_path, result_path, log_path = (
            Path(tmp, "job.json"),
            Path(tmp, "result.json"),
            Path(tmp, "log.txt"),
        )
        job_path.write_text(json.dumps(job))
        env = _child_env(config, job["device"])
        extra: dict[str, Any] = {"isolation": "process"}
        if config.isolation == "zygote" and job["device"] == "cpu":
            zygote = POOL.acquire(env)
            try:
                request = {
                    "job": str(job_path), "result": str(result_path), "log": str(log_path),
                    "cwd": tmp, "env": env,
                }  # fmt: skip
                code, child = zygote.run(request, config.timeout_s)
                extra = {"isolation": "zygote", "zygote_pid": zygote.pid, "child_pid": child}
            except ZygoteError as exc:
                return {"status": "crashed", "message": str(exc), "extra": extra}
            finally:
                zygote.lock.release()
        else:
            code = _run_fresh(job_path, result_path, log_path, tmp, env, config.timeout_s)
        if code is None:
            return {
                "status": "timeout",
                "message": f"the evaluation ran past {config.timeout_s:g} s and was killed",
                "extra": extra,
            }
        if result_path.exists() and code == 0:
            return {**json.loads(result_path.read_text()), "extra": extra}
        tail = log_path.read_text(errors="replace")[-1500:].strip() if log_path.exists() else ""
        if code < 0:
            name = signal.Signals(-code).name
            return {
                "status": "crashed",
                "message": f"the evaluation process died with {name}" + (f": {tail}" if tail else ""),
                "extra": extra,
            }
        message = f"the evaluation process exited with code {code}: {tail}"
        return {"status": "crashed", "message": message, "extra": extra}


def _run_fresh(
    job_path: Path, result_path: Path, log_path: Path, cwd: str, env: dict[str, str], timeout_s: float
) -> int | None:
    """Run the job in a new interpreter: its exit code, or ``None`` when it ran past the timeout."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "turngym.envs.kernel.runner", str(job_path), str(result_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        finally:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child's whole session (the runner and anything the candidate started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
