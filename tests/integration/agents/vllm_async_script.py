"""Run by test_vllm_async.py in the vLLM interpreter (which has no pytest): the same Maze jobs
lock-step through ``LLM`` and asynchronously through ``AsyncLLM``; prints one JSON line.

vLLM starts AsyncLLM's engine core in a spawned process that imports this module again, so the
work stays under ``__main__``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _compare(model_dir: str) -> dict[str, Any]:
    """In the vLLM interpreter: the same Maze jobs lock-step through LLM and async through AsyncLLM."""
    from turngym.agents.async_loop import AsyncSettings, run_episodes
    from turngym.agents.loop import run_batch
    from turngym.agents.policy import LoopConfig, SamplingParams
    from turngym.agents.vllm import VLLMPolicy
    from turngym.agents.vllm_async import AsyncVLLMPolicy
    from turngym.envs import make

    jobs = [(task, 5) for task in range(4)] + [(0, 5)]
    config = LoopConfig(sampling=SamplingParams(max_new_tokens=6, seed=3), max_context_tokens=2048)

    def factory() -> Any:
        return make("turngym/Maze-v0", max_turns=3)

    sync = VLLMPolicy(model_dir)
    lock = run_batch(factory, sync, sync.tokenizer, jobs, config)
    del sync
    policy = AsyncVLLMPolicy(model_dir)
    fast = run_episodes(factory, policy, policy.tokenizer, jobs, config, AsyncSettings(max_concurrent=3))
    again = run_episodes(factory, policy, policy.tokenizer, jobs[:2], config)  # a second event loop
    policy.close()

    def key(trajs: list[Any]) -> list[Any]:
        return [[list(t.action_ids) for t in traj.turns] for traj in trajs]

    gap = max(
        abs(a - b)
        for x, y in zip(lock, fast, strict=True)
        for s, t in zip(x.turns, y.turns, strict=True)
        for a, b in zip(s.action_logprobs, t.action_logprobs, strict=True)
    )
    return {
        "same_tokens": key(lock) == key(fast),
        "rerun_same": key(fast[:2]) == key(again),
        "logprob_gap": gap,
        "stops": [t.stop_reason.value for t in fast],
        "first_and_last_differ": key(fast)[0] != key(fast)[4],  # same task, other sampling stream
    }


if __name__ == "__main__":
    print("VLLM_ASYNC " + json.dumps(_compare(sys.argv[1])), flush=True)
