"""Ceilings on the work one input may cause: how much music a MIDI file may describe, checked
while it is read (`ReadLimits`), and how many events one generated piece may run through
(`max_piece_events`).

A few kilobytes of MIDI can describe years of music (deltas of 0x0FFFFFFF ticks, a 10-hour
silence, a tempo of one microsecond per beat), and every step after reading (quantizing to a
grid, laying out bars, rendering) costs time and memory in proportion to the music's length.
So the reader refuses such a file before anything that large exists: the scanner stops once a
file's kept events pass `max_events`, and `read_score` refuses a piece longer than
`max_minutes` (in seconds, and in quarter notes at `FASTEST_QPM`, so an absurdly fast tempo
cannot hide hours of grid steps in a few seconds). Both ceilings are settings of the
environment, `MELODYGEN_MAX_MINUTES` and `MELODYGEN_MAX_EVENTS`, so that every command, the
API and the studio obey the same ones.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from melodygen.errors import ConfigError

# The fastest tempo a real score plausibly asks for; beyond it a minute holds more beats.
FASTEST_QPM = 300.0
MINUTES_VARIABLE, EVENTS_VARIABLE = "MELODYGEN_MAX_MINUTES", "MELODYGEN_MAX_EVENTS"
PIECE_VARIABLE = "MELODYGEN_MAX_PIECE_EVENTS"
# A whole pop song in the multitrack encoding is 6-8 k ids; 20 k decodes in well under a minute
# on one CPU core for the bundled models.
MAX_PIECE_EVENTS = 20_000


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """`max_minutes` of music and `max_events` kept MIDI events (notes on and off, pedal,
    program, tempo, meter and name events) per file."""

    max_minutes: float = 30.0
    max_events: int = 500_000

    @property
    def max_seconds(self) -> float:
        return self.max_minutes * 60.0

    @property
    def max_beats(self) -> float:
        return self.max_minutes * FASTEST_QPM

    @classmethod
    def from_env(cls) -> ReadLimits:
        """The defaults, with `$MELODYGEN_MAX_MINUTES` / `$MELODYGEN_MAX_EVENTS` where set."""
        default = cls()
        return cls(_number(MINUTES_VARIABLE, float, default.max_minutes),
                   _number(EVENTS_VARIABLE, int, default.max_events))

    def minutes_problem(self, seconds: float, beats: float) -> str | None:
        """Why a piece `seconds` long, `beats` quarter notes long, is over the ceiling, or None."""
        raise_it = f"raise it with {MINUTES_VARIABLE}=<minutes>"
        if seconds > self.max_seconds:
            return (f"{seconds / 60:,.1f} minutes of music, longer than the ceiling of "
                    f"{self.max_minutes:g} minutes ({raise_it})")
        if beats > self.max_beats:
            return (f"{beats:,.0f} beats of music, more than the ceiling of {self.max_beats:,.0f} "
                    f"({self.max_minutes:g} minutes at {FASTEST_QPM:g} beats a minute; {raise_it})")
        return None

    def events_problem(self) -> str:
        return (f"more than {self.max_events:,} MIDI events, the ceiling per file "
                f"(raise it with {EVENTS_VARIABLE}=<count>)")


def max_piece_events() -> int:
    """The most events one generated piece's decoding may run through, given music included:
    `MAX_PIECE_EVENTS`, or `$MELODYGEN_MAX_PIECE_EVENTS`. Bounds the work of any request (a
    long piece to accompany, `--length 10**9`)."""
    return _number(PIECE_VARIABLE, int, MAX_PIECE_EVENTS)


def piece_events_problem(events: int, what: str) -> str:
    """One line: `what` needs `events` events, past the ceiling (and how to raise it)."""
    return (f"{what} needs {events:,} events, more than the {max_piece_events():,} one piece may have "
            f"(raise it with {PIECE_VARIABLE}=<count>)")


def _number(variable: str, kind: type, default: float) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"${variable} must be a positive {'whole ' if kind is int else ''}number, not {text!r}")
    return value
