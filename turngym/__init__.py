"""turngym: multi-turn, tool-using text environments and a step-level-credit RL trainer."""

from turngym.envs import TextEnv, list_envs, make, register
from turngym.trajectory import StopReason, Trajectory, Turn

__version__ = "0.1.0"

__all__ = ["StopReason", "TextEnv", "Trajectory", "Turn", "__version__", "list_envs", "make", "register"]
