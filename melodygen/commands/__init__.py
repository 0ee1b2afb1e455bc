"""One module per `melodygen` subcommand; each exports a click `command`.

Command modules import only click at module level, so `melodygen --help` stays fast.
"""

from melodygen.commands import (
                  baseline,
                  evaluate,
                  fit,
                  models,
                  prepare,
                  render,
                  report,
                  sample,
                  stats,
                  studio,
                  tokens,
                  train,
)

COMMANDS: list = [baseline.command, evaluate.command, fit.command, models.command,
                  prepare.command, render.command, report.command,
                  sample.command, stats.command, studio.command, tokens.command, train.command]
