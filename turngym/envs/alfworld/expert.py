"""The ALFWorld expert: the next command that brings the current state closer to the goal.

Like ALFWorld's hand-coded expert it plays the task as *find, take, transform, go, place*, but it
reads the true state (where every object is), so it never searches: it goes to the receptacle that
holds a target object, opens it if closed, takes the object, heats/cools/cleans it at the
appliance when the task asks, then goes to a goal receptacle, opens it and moves the object in.
``pick2`` repeats the delivery into one goal receptacle; ``look`` takes the object to the lamp and
uses it. From any reachable state (e.g. after random moves) it first returns a useless held object
to a receptacle that can hold it. Each task takes at most about a dozen commands, far under 50.
"""

from __future__ import annotations

from turngym.envs.alfworld.sim import Simulator
from turngym.envs.alfworld.vocab import CAN_CONTAIN, TRANSFORM


def _reach(sim: Simulator, r: int) -> str | None:
    """The command that gets the agent to an open receptacle ``r``, or None when already there."""
    if sim.loc != r:
        return f"go to {sim.rnames[r]}"
    if sim.openable[r] and not sim.opened[r]:
        return f"open {sim.rnames[r]}"
    return None


def _deliver(sim: Simulator, r: int) -> str:
    step = _reach(sim, r)
    return step or sim.put_command(sim.onames[sim.held], sim.rnames[r])


def _fetch(sim: Simulator, candidates: list[int]) -> str:
    o = min(candidates, key=lambda o: (sim.where[o] != sim.loc, o))
    r = sim.where[o]
    return _reach(sim, r) or f"take {sim.onames[o]} from {sim.rnames[r]}"


def _goal_receptacle(sim: Simulator) -> int:
    """The goal-type receptacle holding most target objects (ties: the first one)."""
    h = sim.house
    return max(
        sim.layout.goal_receptacles,
        key=lambda r: (sum(sim.otypes[o] == h.obj for o in sim.contents[r]), -r),
    )


def expert_command(sim: Simulator) -> str:
    """The expert's next command in ``sim``'s current state (assumes the goal does not hold yet)."""
    h = sim.house
    held = sim.held
    if held >= 0 and sim.otypes[held] != h.obj:
        homes = [r for r, t in enumerate(sim.rtypes) if sim.otypes[held] in CAN_CONTAIN[t]]
        return _deliver(sim, min(homes, key=lambda r: (r != sim.loc, r)))
    targets = sim.layout.targets
    if h.task_type == 2:
        lamp = sim.layout.lamps[0]
        if held < 0:
            return _fetch(sim, targets)
        if sim.loc != sim.where[lamp]:
            return f"go to {sim.rnames[sim.where[lamp]]}"
        return f"use {sim.onames[lamp]}"
    goal = _goal_receptacle(sim)
    if held < 0:
        waiting = [o for o in targets if sim.where[o] != goal]
        if h.task_type in TRANSFORM:
            flag = {3: sim.clean, 4: sim.hot, 5: sim.cool}[h.task_type]
            waiting = [o for o in targets if not (flag[o] and sim.where[o] == goal)]
        return _fetch(sim, waiting)
    if h.task_type in TRANSFORM:
        verb, appliance, _ = TRANSFORM[h.task_type]
        flag = {3: sim.clean, 4: sim.hot, 5: sim.cool}[h.task_type]
        if not flag[held]:
            at = next(r for r, t in enumerate(sim.rtypes) if t == appliance)
            if sim.loc < 0 or sim.rtypes[sim.loc] != appliance:
                return f"go to {sim.rnames[at]}"
            return f"{verb} {sim.onames[held]} with {sim.rnames[sim.loc]}"
    return _deliver(sim, goal)
