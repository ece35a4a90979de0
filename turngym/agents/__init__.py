"""Agents: policies and the loops that turn observations into actions.

* :mod:`~turngym.agents.policy` — the Policy protocol, ``SamplingParams``, ``Completion``, ``LoopConfig``.
* :mod:`~turngym.agents.hf` — batched sampling from a local Hugging Face causal LM (CPU or CUDA).
* :mod:`~turngym.agents.tiny` — the project's own tiny Qwen2-architecture model (``hf:tiny``).
* :mod:`~turngym.agents.openai` — any OpenAI-compatible endpoint (evaluation).
* :mod:`~turngym.agents.scripted` — scripted, expert and random token policies (tests, no model).
* :mod:`~turngym.agents.chat` / :mod:`~turngym.agents.loop` — chat glue and the token-exact loop.
* :mod:`~turngym.agents.chat_loop` — the message-level loop for chat policies.
* :mod:`~turngym.agents.baselines` — model-free expert/random episodes and the eval summary.

Nothing here is imported eagerly: ``import turngym.agents`` does not import torch.
"""
