"""``rollout.arpo``: the knobs of ARPO's entropy-based branching rollout and AEPO's switches.

Defaults are ARPO's (Dong et al., arXiv 2507.19849; research note §3): N = M/2 initial rollouts,
the first k = 20 tokens after a tool result, top-10 log-probs, α = 0.5, β = 0.2 (the paper's
scripts), beam Z = 2 (a branching node adds at most one copy), ``soft`` attribution. Every AEPO
switch (arXiv 2510.14545; note §3.6) is off.
"""

from __future__ import annotations

from dataclasses import dataclass

from turngym.errors import ConfigError

ATTRIBUTIONS = ("soft", "hard")


@dataclass
class ArpoConfig:
    budget: int | None = None
    """M: trajectories per task (a group), never exceeded and always filled; null =
    ``rollout.group_size``, so ARPO and GRPO with the same group size sample as many trajectories."""
    initial: int | None = None
    """N: full rollouts started from the task; the other M − N come from branching (and from
    fresh rollouts when a group has none running). null = M // 2 (the paper's 8 of 16)."""
    k: int = 20
    """Tokens at the start of a segment whose entropies are summed."""
    top_logprobs: int = 10
    """Log-probs per position the entropy is computed from (vLLM's ``logprobs=10`` in ARPO)."""
    alpha: float = 0.5
    """α: branch probability at ΔH = 0."""
    beta: float = 0.2
    """β: weight of the entropy change ΔH = H_t − H_initial in P = clip(α + β·ΔH, 0, 1)."""
    beam: int = 2
    """Z: a branching node makes up to Z − 1 copies, each with probability P."""
    attribution: str = "soft"
    """``soft``: GRPO over the M sequences (the paper's default); ``hard``: a prefix shared by d
    branches gets the mean of their advantages and counts once in the loss."""
    dynamic_budget: bool = False
    """AEPO entropy pre-monitoring: one trajectory per task is sampled first, then the number of
    global samples is m = M·σ(budget_beta·(H_root − mean H_tool)); branches get the other M − m."""
    budget_beta: float = 1.0
    """β of the pre-monitoring sigmoid."""
    branch_penalty: float = 0.0
    """AEPO consecutive-branch penalty p: P_t is multiplied by (1 − p)^l, l = the branchings in a
    row on the path so far (0: off)."""
    balanced_clipping: bool = False
    """AEPO gradient-preserving clipping: above 1 + ε_high the ratio is (1 + ε_high)·ρ/sg(ρ), so a
    clipped token keeps the gradient (1 + ε_high)·∇log π instead of none."""
    balanced_clipping_tokens: str = "all"
    """Which tokens the balanced clipping applies to: ``all`` (the AEPO code) or ``high_entropy``
    (tokens whose entropy is above the mean of their micro-batch)."""
    entropy_advantage: float = 0.0
    """AEPO entropy-aware advantage c: Ã_t = A_t·(1 + c·z_t), z_t the token's entropy standardised
    over the micro-batch's loss tokens (AEPO: 0.2; 0: off)."""

    def budget_of(self, group_size: int) -> int:
        """M for a run whose ``rollout.group_size`` is ``group_size``."""
        return self.budget if self.budget is not None else group_size

    def initial_of(self, group_size: int) -> int:
        """N for a run whose ``rollout.group_size`` is ``group_size``."""
        return self.initial if self.initial is not None else max(self.budget_of(group_size) // 2, 1)

    def validate(self, group_size: int) -> None:
        """Raise :class:`ConfigError` naming the field and the fix."""
        m, n = self.budget_of(group_size), self.initial_of(group_size)
        if m < 2:
            raise ConfigError(f"rollout.arpo.budget={m}: a group needs M >= 2 trajectories to compare")
        if not 1 <= n <= m:
            raise ConfigError(f"rollout.arpo.initial={n} must be in [1, budget={m}]")
        if self.k < 1 or self.top_logprobs < 1:
            raise ConfigError(
                f"rollout.arpo.k={self.k} and top_logprobs={self.top_logprobs} must be >= 1 (the entropy "
                "is measured on the first k tokens from their top log-probs)"
            )
        if self.beam < 2:
            raise ConfigError(f"rollout.arpo.beam={self.beam} must be >= 2 (a branch adds beam - 1 copies)")
        if self.attribution not in ATTRIBUTIONS:
            raise ConfigError(
                f"rollout.arpo.attribution must be one of {ATTRIBUTIONS}, got {self.attribution!r}"
            )
        if not 0.0 <= self.branch_penalty <= 1.0:
            raise ConfigError(f"rollout.arpo.branch_penalty={self.branch_penalty} must be in [0, 1]")
        if self.balanced_clipping_tokens not in ("all", "high_entropy"):
            raise ConfigError(
                "rollout.arpo.balanced_clipping_tokens must be 'all' or 'high_entropy', got "
                f"{self.balanced_clipping_tokens!r}"
            )
        if self.entropy_advantage < 0:
            raise ConfigError(f"rollout.arpo.entropy_advantage={self.entropy_advantage} must be >= 0")
