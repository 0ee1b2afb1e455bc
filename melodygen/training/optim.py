"""AdamW with decoupled weight decay on matrices only, and the warm-up + cosine lr schedule."""

from __future__ import annotations

import math
from collections.abc import Collection

import torch
from torch import nn

from melodygen.config import TrainingConfig

_NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.RMSNorm)


def make_optimizer(model: nn.Module, cfg: TrainingConfig, new: Collection[str] = ()) -> torch.optim.AdamW:
    """AdamW over two groups: weight matrices decay; biases, norms and embeddings (a tied
    output head shares the embedding, so it does not decay either) do not.

    A warm start (`training.init_from`) with `init_lr_scale` below 1 splits each group in two:
    the weights taken from the checkpoint train at that share of the learning rate, the weights
    `new` to the model (their names: `training.init.Start.new`) at the full rate, as in
    discriminative fine-tuning (Howard & Ruder 2018): a new cross-attention learns in hundreds of
    steps without the pretrained decoder drifting. Each group keeps its `lr_scale` and the names
    of its new weights, so a resume rebuilds the same groups (`new_weights`)."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, _NO_DECAY_MODULES)
                for p in m.parameters(recurse=False)}
    scale = cfg.init_lr_scale if cfg.init_from and new else 1.0
    groups: dict[tuple[bool, bool], list[tuple[str, nn.Parameter]]] = {}
    for name, param in model.named_parameters():  # named_parameters() yields a tied tensor once
        if param.requires_grad:
            decays = param.ndim >= 2 and id(param) not in no_decay
            groups.setdefault((decays, scale != 1.0 and name in new), []).append((name, param))
    return torch.optim.AdamW([
        {"params": [p for _, p in named], "weight_decay": cfg.weight_decay if decays else 0.0,
         "lr_scale": 1.0 if is_new else scale, "new_weights": [n for n, _ in named] if is_new else []}
        for (decays, is_new), named in sorted(groups.items(), key=lambda kv: (kv[0][1], not kv[0][0]))
    ], lr=cfg.lr, betas=cfg.betas)


def new_weights(optimizer_state: dict) -> frozenset[str]:
    """The names of the weights that `make_optimizer` trained at the full rate, from its saved
    `state_dict()` (none for an optimizer saved before groups kept them)."""
    return frozenset(name for group in optimizer_state.get("param_groups", ()) for name in group.get("new_weights", ()))


def lr_at(step: int, cfg: TrainingConfig, time_used: float = 0.0) -> float:
    """The learning rate for optimisation step `step` (0-based): linear warm-up over
    `warmup_steps`, then a cosine decay to `lr * min_lr_ratio` at `max_steps`.

    With a time budget, `time_used` (the share of `max_minutes` spent, 0..1) advances the decay
    when it is ahead of the steps, so a run cut by the budget on a slow machine still ends
    annealed. Such a run depends on the clock; runs without a budget are deterministic."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, max((step - cfg.warmup_steps) / span, time_used))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every parameter group of `optimizer` at learning rate `lr` times its `lr_scale`."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
