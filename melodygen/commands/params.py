"""Click parameter types the commands share (only click and stdlib, so `--help` stays fast)."""

from __future__ import annotations

import math

import click


class FiniteFloatRange(click.FloatRange):
    """`click.FloatRange` that also refuses nan and infinities: nan passes every comparison of
    the range check, and inf an open upper end, then breaks the arithmetic behind the option."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class RegistryChoice(click.Choice):
    """`click.Choice` over a registry's names, read when first needed: importing a registry
    when the CLI starts (the encodings pull in numpy) would slow every command's `--help`."""

    def __init__(self, load_names):
        self._load_names = load_names
        super().__init__((), case_sensitive=True)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._load_names())

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ assigns them; ours are the registry's
        pass


def _encoding_names() -> list[str]:
    from melodygen.encodings import ENCODINGS

    return sorted(ENCODINGS)


ENCODING_NAME = RegistryChoice(_encoding_names)
ENCODING_HELP = ("Event encoding: melody (one monophonic line, Melody RNN), performance (one "
                 "polyphonic stream, Performance RNN) or multitrack (whole arrangements: a track "
                 "per instrument, drums, on bars and beats).")
SET_ENCODING_HELP = ("An encoding setting, e.g. encoding.min_pitch=36 or encoding.track=2 (TOML value; "
                     "the 'encoding.' may be left out); repeatable.")


# What each job's --threads defaults to (`devices.JOB_THREADS`, the one owner of the numbers).
_THREADS_DEFAULT = {
    "sample": "1: a piece is drawn an id at a time, too little work to share, so more threads "
              "only wait for each other",
    "studio": "1, as for sample: its jobs draw pieces an id at a time",
    "evaluate": "the physical cores this process may use, which share its batches well; on a "
                "busy machine (a note says so) use 1",
    "report": "1: its work is reading and measuring files, not torch's",
    "train": "the config's training.threads, else the physical cores this process may use; on a "
             "busy machine (a note says so) use 1",
    "fit": "the physical cores this process may use; on a busy machine (a note says so) use 1",
}


def threads_option(job: str):
    """The `--threads N` option of a command doing `job` (a key of `devices.JOB_THREADS`);
    None when not given, so `devices.pick_threads(job, threads)` applies the job's default."""
    return click.option("--threads", type=click.IntRange(min=0), default=None, metavar="N",
                        help=f"CPU threads for torch [default: {_THREADS_DEFAULT[job]}]. "
                             "0: torch's default (the physical cores).")


def request_options(command):
    """The options of `melodygen sample` made from the request's fields (`GenerationRequest`):
    one click option per field, with its flags, range, default and help, so the command line
    spells each option as the API and the studio do."""
    from melodygen.sampling.request import request_defaults
    from melodygen.sampling.request import request_options as options

    defaults = request_defaults()
    for name, option in reversed(options().items()):
        command = click.option(*_flags(name, option), name, default=defaults[name], help=option.help,
                               **_click_kind(option, defaults[name]))(command)
    return command


def _flags(name: str, option) -> tuple[str, ...]:
    return option.flags or (f"--{name.replace('_', '-')}",)


def _click_kind(option, default) -> dict:
    """The click type of an option: a range for numbers, an existing file, a flag, or text."""
    show = {"show_default": default is not None and default is not False}
    if option.kind == "flag":  # "--fast/--no-fast" is a flag by its slash
        return {"show_default": True} if "/" in _flags("", option)[0] else {"is_flag": True}
    if option.kind == "file":
        return {"type": click.Path(exists=True, dir_okay=False, path_type=str)}
    if option.kind == "int":
        return {"type": click.IntRange(None if option.lo is None else int(option.lo),
                                       None if option.hi is None else int(option.hi)), **show}
    if option.kind == "float":
        return {"type": FiniteFloatRange(option.lo, option.hi, min_open=option.lo_open), **show}
    return {"metavar": "LIST" if option.kind == "list" else None}
