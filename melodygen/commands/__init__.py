"""One module per `melodygen` subcommand; each exports a click `command`.

Command modules import only click at module level, so `melodygen --help` stays fast.
"""

from melodygen.commands import render, stats

COMMANDS: list = [render.command, stats.command]
