"""The ``vllm`` backend on vLLM's asynchronous engine (``AsyncLLM``): continuous batching.

:class:`AsyncVLLMPolicy` is an :class:`~turngym.agents.async_loop.AsyncPolicy`: every episode of
the asynchronous loop sends its request the moment it needs one (``agenerate``), and vLLM's
scheduler admits it into the running batch at its next step, so no episode waits for another's
completion to end. Each request carries its episode's seed, so its tokens do not depend on what
else the engine runs, up to floating-point batching effects (see docs/agents.md).

The engine runs its own event loop in a background thread (``AsyncLLM`` binds itself to the loop
that first uses it, and every :func:`~turngym.agents.async_loop.run_episodes` call runs a fresh
one); ``agenerate`` hands each request to that loop and awaits the answer. Sampling parameters,
log-probs and failures are those of :class:`~turngym.agents.vllm.VLLMPolicy` (same conversion).
This policy samples only: weight updates go through :class:`~turngym.agents.vllm.VLLMPolicy`.

On CPU, vLLM prefills a request in pieces when the prompts of one engine step exceed its token
budget (4096), which seeded CPU generators do not support; keep the prompts in flight under it
there (``max_concurrent`` × prompt length), or use a GPU.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from turngym.agents.policy import Completion, SamplingParams
from turngym.agents.vllm import ENGINE_ENV, VLLMConfig, VLLMPolicy, vllm_sampling
from turngym.errors import ConfigError, PolicyError


class AsyncVLLMPolicy:
    """A sampling policy over ``vllm.v1.engine.async_llm.AsyncLLM``."""

    def __init__(self, path: str | Path, config: VLLMConfig | None = None, *, name: str = "") -> None:
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"vllm:{path} is not a model directory (no config.json)")
        for key, value in ENGINE_ENV.items():
            if key != "VLLM_ENABLE_V1_MULTIPROCESSING":  # AsyncLLM runs its engine core in a process
                os.environ.setdefault(key, value)
        try:
            import vllm
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise ConfigError(f"the vllm backend needs the vllm package ({exc})") from exc
        self.config = config or VLLMConfig()
        self.name = name or f"vllm-async:{path}"
        self.version = 0
        self._vllm = vllm
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="turngym-vllm", daemon=True)
        self._thread.start()
        args = AsyncEngineArgs(
            model=str(path),
            dtype=self.config.dtype,
            enforce_eager=True,
            max_model_len=self.config.max_model_len,
            max_logprobs=self.config.max_logprobs,
            logprobs_mode="processed_logprobs",
            gpu_memory_utilization=self.config.gpu_memory_utilization,
            seed=self.config.seed,
        )
        self.engine = asyncio.run_coroutine_threadsafe(self._build(AsyncLLM, args), self._loop).result()
        self.tokenizer = self.engine.get_tokenizer()
        self._ids = itertools.count()

    @staticmethod
    async def _build(cls: Any, args: Any) -> Any:
        return cls.from_engine_args(args)

    async def agenerate(self, prompt: Sequence[int], params: SamplingParams, seed: int | None) -> Completion:
        """One completion of ``prompt`` (``params.n`` must be 1), sampled with ``seed``."""
        if params.n != 1:
            raise PolicyError(f"agenerate samples one completion per request; got n={params.n}")
        if not prompt:
            raise PolicyError("agenerate got an empty prompt; every prompt needs at least one token")
        sampling = vllm_sampling(self._vllm, self.config, params, seed)
        request = self._request(list(prompt), sampling, f"turngym-{next(self._ids)}")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(request, self._loop))

    async def _request(self, prompt: list[int], sampling: Any, request_id: str) -> Completion:
        last = None
        async for output in self.engine.generate({"prompt_token_ids": prompt}, sampling, request_id):
            last = output
        if last is None or not last.outputs:
            raise PolicyError(f"vLLM returned nothing for request {request_id}")
        return VLLMPolicy._completion(last.outputs[0], sampling.logprobs or 0)

    def close(self) -> None:
        """Shut the engine down and stop its loop."""
        self.engine.shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
