"""Progress of a long command (an import, an export): a bar on stderr when it is a terminal,
else a line each tenth of the way (or each PROGRESS_QUIET_S), with the time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

PROGRESS_STEPS = 10  # without a terminal, a progress line each tenth of the way,
PROGRESS_QUIET_S = 30.0  # or once this long has passed without one
BAR_REDRAW_S = 0.2


class Progress:
    """How far a command has come out of ``size`` (bytes of a file, members of a segment);
    ``counts`` says what it has done so far, given the seconds since it started."""

    def __init__(self, label: str, size: int, counts: Callable[[float], str]) -> None:
        self.label, self.size, self.counts = label, size, counts
        self.started = self._shown_at = time.monotonic()
        self._step = 0
        self._bar: ProgressBar[int] | None = None
        if sys.stderr.isatty() and size:
            self._bar = click.progressbar(
                length=size,
                label=label,
                file=sys.stderr,
                show_eta=True,
                item_show_func=lambda _: self._counts(),
            )
            self._bar.__enter__()

    def _counts(self) -> str:
        return self.counts(max(time.monotonic() - self.started, 1e-3))

    def show(self, position: int) -> None:
        now = time.monotonic()
        if self._bar is not None:
            if now - self._shown_at >= BAR_REDRAW_S:
                self._bar.update(min(position, self.size) - self._bar.pos)
                self._shown_at = now
            return
        step = position * PROGRESS_STEPS // self.size if self.size else 0
        if step > self._step or now - self._shown_at >= PROGRESS_QUIET_S:
            self._step, self._shown_at = step, now
            fraction = min(position / self.size, 1.0) if self.size else 1.0
            click.echo(
                f"{self.label}: {fraction:.0%}, {self._counts()}{self._eta(fraction)}", err=True
            )

    def _eta(self, fraction: float) -> str:
        if not 0 < fraction < 1:
            return ""
        left = (time.monotonic() - self.started) * (1 - fraction) / fraction
        return f", ETA {left:.0f} s" if left < 120 else f", ETA {left / 60:.0f} min"

    def close(self, position: int) -> None:
        if self._bar is not None:
            self._bar.update(min(position, self.size) - self._bar.pos)
            self._bar.__exit__(None, None, None)
