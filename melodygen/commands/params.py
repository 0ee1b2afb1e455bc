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
