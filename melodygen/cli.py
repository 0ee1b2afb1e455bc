"""The `melodygen` command line: a click group over one module per command.

Every `MelodygenError` raised below a command becomes a one-line message and exit status 1
(never a traceback), and so does running out of memory; Ctrl-C prints "interrupted" and exits
with status 130 after the command has cleaned up. Usage errors are click's: exit status 2.
"""

from __future__ import annotations

import re

import click

from melodygen import __version__
from melodygen.errors import MelodygenError


class _FriendlyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MelodygenError as exc:
            raise click.ClickException(str(exc)) from None
        except FileNotFoundError as exc:
            raise click.ClickException(f"{exc.filename}: no such file or folder") from None
        except PermissionError as exc:
            raise click.ClickException(f"{exc.filename}: permission denied") from None
        except OSError as exc:  # disk full, not a directory...: about a path, not a bug
            if exc.filename is None:
                raise
            raise click.ClickException(f"{exc.filename}: {exc.strerror or exc}") from None
        except KeyboardInterrupt:  # click would print "Aborted!" and exit 1
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (MemoryError, RuntimeError) as exc:  # numpy's MemoryError; torch's are RuntimeErrors
            reason = _out_of_memory(exc)
            if reason is None:
                raise
            raise click.ClickException(reason) from None


_OUT_OF_MEMORY = re.compile(r"out of memory|can't allocate memory|unable to allocate", re.IGNORECASE)


def _out_of_memory(exc: Exception) -> str | None:
    """One line for an allocation that failed (numpy: MemoryError; torch, CPU or CUDA: a
    RuntimeError saying so), else None: other errors are bugs and keep their traceback."""
    text = str(exc)
    if not isinstance(exc, MemoryError) and not _OUT_OF_MEMORY.search(text):
        return None
    size = re.search(r"allocate ([\d.]+ ?(?:[KMGT]i?B|bytes))", text)
    return (f"out of memory{f' (tried to allocate {size.group(1)})' if size else ''}; ask for less: "
            "a smaller batch, sequence length or model, or fewer outputs")


@click.group(cls=_FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="melodygen")
def main() -> None:
    """Symbolic music generation: MIDI folders -> event tokens -> RNN / LSTM / Transformer
    generators -> new MIDI files.

    \b
    Typical path:
      melodygen prepare bundled:nottingham --encoding melody --out runs/data/nottingham-melody
      melodygen train --config configs/melody_lstm.toml --out runs/melody_lstm
      melodygen sample runs/melody_lstm/best.pt --out samples/ --temperature 0.9
    """


def _register() -> None:
    from melodygen.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register()
