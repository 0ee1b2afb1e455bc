"""Training: `train(config, out_dir)` runs a whole training job (see `loop.py`).

Split by job: `data` (dataset resolution and batches), `optim` (AdamW groups and the lr
schedule), `steps` (one optimisation step, validation), `state` (what `--resume` restores),
`rundir` (the run folder and metrics.csv), `progress` (bar and summary), `distributed` (DDP),
`interrupt` (graceful Ctrl-C).
"""

from melodygen.training.loop import TrainResult, train

__all__ = ["TrainResult", "train"]
