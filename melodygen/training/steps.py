"""One optimisation step and one validation pass: the hot path, kept free of host syncs.

A step never calls `.item()`: it returns the loss as a device tensor, and the loop reads it
only every `log_every` steps. Batches are gathered by the window sampler with one numpy index.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from melodygen.config import TrainingConfig
from melodygen.devices import autocast
from melodygen.training import distributed
from melodygen.training.distributed import DistInfo
from melodygen.training.optim import lr_at, set_lr


class Stepper:
    """`stepper(step, time_used)` runs optimisation step `step`: `grad_accum` micro-batches
    of next-id cross-entropy (PAD targets ignored; weighted where the batch says), clipping, the
    lr of the schedule, AdamW."""

    def __init__(self, model, optimizer, batches, cfg: TrainingConfig, device: torch.device,
                 pad_id: int):
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.cfg, self.device, self.pad_id = cfg, device, pad_id
        self._non_blocking = device.type == "cuda"
        self.lr = 0.0  # of the last step

    def __call__(self, step: int, time_used: float = 0.0) -> torch.Tensor:
        cfg = self.cfg
        self.lr = lr_at(step, cfg, time_used)
        set_lr(self.optimizer, self.lr)
        total = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum):
            batch = next(self.batches).to(self.device, non_blocking=self._non_blocking)
            with distributed.no_sync(self.model, sync=micro == cfg.grad_accum - 1):
                with autocast(self.device):
                    logits = self.model(batch.ids, **batch.side)  # (B, T, V)
                loss = self._loss(logits, batch)
                (loss / cfg.grad_accum).backward()
            total += loss.detach()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total / cfg.grad_accum

    def _loss(self, logits: torch.Tensor, batch) -> torch.Tensor:
        """Mean cross-entropy over the scored targets, weighted by `batch.weights` where set."""
        kept = dict(ignore_index=self.pad_id, label_smoothing=self.cfg.label_smoothing)
        if batch.weights is None:
            return F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten(), **kept)
        each = F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten(), reduction="none", **kept)
        weights = batch.weights.flatten() * (batch.targets.flatten() != self.pad_id)
        return (each * weights).sum() / weights.sum().clamp(min=1e-8)


def validate(model, windows, device: torch.device, info: DistInfo) -> dict:
    """{nll (nats/event), perplexity, accuracy, events} over the validation windows, each rank
    scoring its share (`melodygen.metrics.nll_sums`, the figures `evaluate` reports)."""
    from melodygen.metrics import nll_figures, nll_sums

    nll_sum, hits, events = distributed.sum_floats(list(nll_sums(model, windows, device)), info, device)
    return nll_figures(nll_sum, hits, int(events))
