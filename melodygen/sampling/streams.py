"""A piece's new events as the decode loop draws them (`Model.stream`), then the piece itself.

`PieceStream(make)` runs `make()` (e.g. `Model.generate(n=1, ...)`: planning, grammar,
decoding, the finished `Piece`) in a worker thread, watching its decode loop
(`loop.watching`), and iterates the ids of row 0 as they are drawn, as `Event`s with their
token text; once the iteration ends, `piece` is what `make` returned, so the events are
exactly its new ids. Why a thread: generation is one call down to the loop (`generate_pieces`
-> `decoding.sample` -> `loop.run`), and a thread turns that call's watcher into an iterator
without a second generation path; it also keeps torch's inference mode, which the loop turns
on, inside the worker instead of around the caller's code between events.

An error of `make` (a primer the encoding cannot use, a damaged model; `Model.stream` refuses a
bad request before it starts one) is raised by the `next` that would have given the next
event. A stream closed early (`close()`, a `break` out of a `for` loop, or the stream let go)
stops the generation at its next draw.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from melodygen.encodings.vocab import EOS_ID
from melodygen.sampling.loop import watching


class Event(NamedTuple):
    """One new event of a streamed piece: its id and its token text (`Encoding.vocab.tokens`)."""

    id: int
    token: str


class _Stopped(Exception):
    """Raised in the worker at the next draw once the stream is closed."""


_END = object()  # put by the worker after the last event (or its error)


class PieceStream:
    """An iterator of `Event`s; `piece` is set once it is exhausted (None before)."""

    def __init__(self, make: Callable[[], Any], tokens: Sequence[str]):
        self.piece = None
        self._make, self._tokens = make, tokens
        self._stop = threading.Event()
        self._events = self._iterate()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        """Stops the generation (if it runs) and waits for its thread."""
        self._events.close()

    def _iterate(self) -> Iterator[Event]:
        drawn: queue.SimpleQueue = queue.SimpleQueue()
        worker = threading.Thread(target=self._work, args=(drawn,), name="melodygen-stream", daemon=True)
        worker.start()
        try:
            while (item := drawn.get()) is not _END:
                if isinstance(item, Exception):
                    raise item
                yield Event(item, self._tokens[item])
        finally:
            self._stop.set()
            worker.join()

    def _work(self, drawn: queue.SimpleQueue) -> None:
        """The worker thread: `make()` with every draw of row 0 put into `drawn`, then `_END`
        (after the error, if `make` raised one)."""

        def hand_out(ids) -> None:
            if self._stop.is_set():
                raise _Stopped
            token = int(ids[0])
            if token > EOS_ID:
                drawn.put(token)

        try:
            with watching(hand_out):
                self.piece = self._make()
        except _Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            drawn.put(exc)
        finally:
            drawn.put(_END)
