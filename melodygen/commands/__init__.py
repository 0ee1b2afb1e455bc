"""One module per `melodygen` subcommand; each exports a click `command`.

Command modules import only click at module level, so `melodygen --help` stays fast.
"""

from melodygen.commands import prepare, render, stats

COMMANDS: list = [prepare.command, render.command, stats.command]
