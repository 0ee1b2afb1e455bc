"""AdamW with decoupled weight decay on matrices only, and the warm-up + cosine lr schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from melodygen.config import TrainingConfig

_NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.RMSNorm)


def make_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over two groups: weight matrices decay; biases, norms and embeddings (a tied
    output head shares the embedding, so it does not decay either) do not."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, _NO_DECAY_MODULES)
                for p in m.parameters(recurse=False)}
    decay, keep = [], []
    for param in model.parameters():  # parameters() yields a tied tensor once
        if param.requires_grad:
            (keep if param.ndim < 2 or id(param) in no_decay else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


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
    """Every parameter group of `optimizer` at learning rate `lr`."""
    for group in optimizer.param_groups:
        group["lr"] = lr
