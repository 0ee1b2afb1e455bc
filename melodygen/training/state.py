"""What `--resume` needs beyond the weights: optimizer, schedule position, early-stopping
progress and every random state (torch, CUDA, each rank's window sampler), so that a resumed
run takes exactly the steps an uninterrupted one would have taken."""

from __future__ import annotations

import torch

from melodygen import __version__
from melodygen.errors import CheckpointError
from melodygen.training import distributed
from melodygen.training.distributed import DistInfo


def capture(optimizer, sampler, *, step: int, best: dict | None, bad_evals: int, elapsed: float,
            running: tuple[float, int], info: DistInfo) -> dict:
    """The training-state part of a checkpoint (call on every rank: it gathers the RNGs).
    `running` is the loss sum and step count since the last log, so that the first metrics
    row after a resume averages the same steps as in an uninterrupted run."""
    rng = {"torch": torch.get_rng_state(), "sampler": sampler.state_dict()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state()
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": {"step": step, "best": best, "bad_evals": bad_evals, "elapsed_s": elapsed,
                      "running_loss": distributed.gather(running, info)},
        "rng": {"world_size": info.world_size, "ranks": distributed.gather(rng, info)},
    }


def restore(ckpt: dict, optimizer, sampler, info: DistInfo, path) -> dict:
    """Loads the optimizer and this rank's random states; returns the "scheduler" dict with
    this rank's `running_loss`."""
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        rng = ckpt["rng"]
        scheduler = ckpt["scheduler"]
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: no usable training state to resume from ({exc})") from None
    if rng["world_size"] != info.world_size:
        raise CheckpointError(f"{path}: saved by {rng['world_size']} process(es), resumed with "
                              f"{info.world_size}; resume with the same number of processes")
    mine = rng["ranks"][info.rank]
    torch.set_rng_state(mine["torch"])
    if "cuda" in mine and torch.cuda.is_available():
        torch.cuda.set_rng_state(mine["cuda"])
    sampler.load_state_dict(mine["sampler"])
    return {**scheduler, "running_loss": scheduler["running_loss"][info.rank]}


def check_same_run(ckpt: dict, model, encoding, path) -> None:
    """A checkpoint may only be resumed by the same melodygen, model and encoding."""
    from melodygen.models import settings_to_dict

    model_kind, model_settings = model.kind, settings_to_dict(model.settings)
    problems = []
    if ckpt.get("melodygen_version") != __version__:
        problems.append(f"written by melodygen {ckpt.get('melodygen_version')}, this is {__version__}")
    spec = ckpt["model"]
    if (spec["kind"], spec["settings"]) != (model_kind, model_settings):
        problems.append(f"model {spec['kind']!r} {spec['settings']} != config's {model_kind!r} "
                        f"{model_settings}")
    wanted = encoding.to_dict()
    stored = ckpt["encoding"]
    if (stored.get("name"), stored.get("settings")) != (wanted.get("name"), wanted.get("settings")):
        problems.append(f"encoding {stored.get('name')!r} {stored.get('settings')} != config's "
                        f"{wanted.get('name')!r} {wanted.get('settings')}")
    if problems:
        raise CheckpointError(f"{path}: cannot resume: " + "; ".join(problems))
