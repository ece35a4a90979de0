"""More than one process: an FSDP2 learner, rollouts split across ranks, sharded checkpoints.

Launched with ``torchrun`` (``turngym train --nproc N ...`` execs it): every rank runs
:func:`~turngym.trainers.loop.train`; :func:`init_world` reads torchrun's environment and joins the
process group (``gloo`` on CPU, ``nccl`` on CUDA). Without torchrun the world is one process and
nothing here changes the single-process trainer.

* **Rollouts**: each rank plays groups ``rank, rank + N, ...`` of an iteration's groups with its
  own sampling seeds (:func:`share`) on its own full copy of the weights (the rollout policy, as a
  vLLM engine would be); the finished groups are gathered to every rank in group order
  (:func:`gather`), so credit assignment and the batch are the same on every rank.
* **Learner**: a copy of the model sharded with ``torch.distributed.fsdp.fully_shard`` (each
  decoder layer, then the root): parameters, gradients and AdamW state are split across ranks.
  Each mini-batch's micro-batches are dealt round-robin to the ranks
  (:func:`~turngym.trainers.update.minibatch_loss` with ``world``); a rank's loss is multiplied by
  N because FSDP averages gradients over ranks, so the reduced gradient is the sum over all
  micro-batches, exactly the single-process gradient of the same global batch. A rank with fewer
  micro-batches runs a zero-weighted one so that every rank makes the same collective calls. The
  loss diagnostics are summed over ranks (:func:`reduce_sums`).
* **Sync**: after each update the learner's full weights are gathered and loaded into every
  rank's rollout policy (:func:`full_state_dict`).
* **Checkpoints**: the learner and its optimizer are saved sharded with ``torch.distributed.
  checkpoint`` (``learner/`` in the checkpoint directory, one file per rank) and resumed into the
  same sharding (:func:`save_sharded`, :func:`load_sharded`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from turngym.errors import ConfigError

T = TypeVar("T")
LEARNER_DIR = "learner"
"""Where a checkpoint directory holds the sharded learner and optimizer (``torch.distributed.checkpoint``)."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes logs, reports and the final model."""
        return self.rank == 0


def init_world(device: str = "cpu", timeout_s: float = 1800.0) -> World:
    """Join torchrun's process group (``WORLD_SIZE`` > 1), or the one-process world."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return World(rank=dist.get_rank(), size=dist.get_world_size())


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def share(items: Sequence[T], world: World) -> list[T]:
    """This rank's items: ``rank, rank + size, ...``."""
    return list(items[world.rank :: world.size])


def gather(items: list[T], world: World) -> list[list[T]]:
    """Every rank's ``items`` (picklable), indexed by rank, on every rank."""
    if not world.distributed:
        return [items]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, items)
    return out


def reduce_sums(values: dict[str, float], world: World) -> dict[str, float]:
    """``values`` summed over ranks (every rank must pass the same keys)."""
    if not world.distributed or not values:
        return dict(values)
    keys = sorted(values)
    total = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(total)
    return dict(zip(keys, total.tolist(), strict=True))


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shard(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """``model`` sharded in place over ``world`` with FSDP2: each decoder layer, then the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    device = next(model.parameters()).device.type
    mesh = init_device_mesh(device, (world.size,))
    layers = _decoder_layers(model)
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a transformers causal LM (``model.model.layers`` and the like)."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        node: Any = model
        for part in path.split("."):
            node = getattr(node, part, None)
        if isinstance(node, torch.nn.ModuleList):
            return list(node)
    raise ConfigError(
        f"cannot find the decoder layers of {type(model).__name__} to shard with FSDP; supported: models "
        "with model.layers, transformer.h, gpt_neox.layers or model.decoder.layers"
    )


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The sharded learner's full weights on every rank (a collective: every rank calls it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def load_full_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load full weights (the same on every rank) into the sharded learner."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def save_sharded(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """The learner and its optimizer, each rank writing its shards, under ``path/learner``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(Path(path) / LEARNER_DIR))


def load_sharded(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Restore what :func:`save_sharded` wrote into the same sharding."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    dcp.load(state, checkpoint_id=str(Path(path) / LEARNER_DIR))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def save_checkpoint_sharded(
    root: str | Path,
    iteration: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    history: dict[str, Any],
    config_digest: str,
    keep: int,
    world: World,
) -> None:
    """Checkpoint ``iteration`` of a run of several processes (every rank calls it): the sharded
    learner and optimizer under ``learner/``, rank 0's ``state.pt`` (scheduler, RNG, history), then
    the same atomic publish as a one-process checkpoint."""
    from turngym.trainers.checkpoint import publish_checkpoint, write_state

    root = Path(root)
    tmp = root / f".tmp-iter-{iteration:06d}"
    if world.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(world)
    save_sharded(tmp, model, optimizer)
    barrier(world)
    if world.main:
        write_state(
            tmp,
            iteration,
            {"sharded": True},
            scheduler=scheduler,
            history=history,
            config_digest=config_digest,
        )
        publish_checkpoint(root, tmp, iteration, keep=keep)
    barrier(world)
