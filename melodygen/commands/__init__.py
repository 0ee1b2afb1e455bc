"""One module per `melodygen` subcommand; each exports a click `command`.

Command modules import only click at module level, so `melodygen --help` stays fast.
"""

from melodygen.commands import prepare, render, report, stats, train

COMMANDS: list = [prepare.command, render.command, report.command, stats.command, train.command]
