"""Registration of the built-in environments (imported by ``turngym.envs``).

Entry points are strings, so registering imports no environment module: each family's code (and
its optional dependencies) loads only when its env is made.
"""

from __future__ import annotations

from turngym.envs.registration import register


def register_builtin_envs() -> None:
    """Register every environment that ships with turngym."""
    register(
        "turngym/Maze-v0",
        "turngym.envs.toy.maze:MazeEnv",
        description="Find the treasure in a maze of named rooms (toy; many repeated states)",
    )
    register(
        "turngym/KeyDoor-v0",
        "turngym.envs.toy.keydoor:KeyDoorEnv",
        description="Fetch a key, open the locked treasure room; a paid compass tool (long horizon, toy)",
    )
    register(
        "turngym/Code-v0",
        "turngym.envs.code.env:CodeEnv",
        description="Programming tasks: a sandboxed python tool, then a submission graded by hidden tests",
    )
    register(
        "turngym/Calculator-v0",
        "turngym.envs.toy.calculator:CalculatorEnv",
        description="Arithmetic word problems solved by calling a calculator tool (toy tool use)",
    )
    register(
        "turngym/ALFWorld-v0",
        "turngym.envs.alfworld.env:ALFWorldEnv",
        description="ALFWorld household tasks (6 types), generated procedurally and simulated in-process",
    )
    register(
        "turngym/ALFWorld-TW-v0",
        "turngym.envs.alfworld.tw_env:ALFWorldTWEnv",
        description="ALFWorld game files (ours exported, or your own) played by the real TextWorld engine",
        extra="alfworld",
    )
    register(
        "turngym/Search-v0",
        "turngym.envs.search.env:SearchEnv",
        description="Search-R1-style retrieval QA: <search> a corpus with BM25, then <answer> (EM reward)",
    )
    register(
        "turngym/WebShop-v0",
        "turngym.envs.webshop.env:WebShopEnv",
        description="Shop a product catalog with search[...] and click[...] for an instruction (WebShop)",
        extra="webshop",
    )
    register(
        "turngym/KernelGym-v0",
        "turngym.envs.kernel.env:KernelGymEnv",
        description="Write C++/Triton/CUDA kernels for PyTorch models, evaluated and refined over turns",
        extra="kernel",
    )
