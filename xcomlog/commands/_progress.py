"""What a long command is doing, on a terminal only: progress bars (tqdm) and waiting notes.

Everything goes to stderr and only when stderr is a terminal, so pipes and scripts see
nothing but the command's output. The client has no progress callbacks, so a bar follows
the link's byte or request counters from a small background thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: How often a bar re-reads its counter (seconds).
REFRESH_S = 0.2


def on_terminal() -> bool:
    """True when stderr is a terminal a person watches."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def note(text: str) -> None:
    """Tell the person at the terminal what the command waits for (nothing in a pipe)."""
    if on_terminal():
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def following(
    counter: Callable[[], float], desc: str, *, unit: str = "it", bytes_: bool = False
) -> Iterator[None]:
    """A bar that shows ``counter()`` (minus its start value) while the block runs."""
    if not on_terminal():
        yield
        return
    from tqdm import tqdm

    start = counter()
    bar = tqdm(
        desc=desc,
        unit="B" if bytes_ else unit,
        unit_scale=bytes_,
        unit_divisor=1024 if bytes_ else 1000,
        file=sys.stderr,
        leave=False,
        # A terminal that reports no width (a bare pty) would get an empty bar.
        ncols=max(shutil.get_terminal_size((80, 24)).columns, 40),
    )
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(REFRESH_S):
            bar.update(counter() - start - bar.n)

    thread = threading.Thread(target=follow, name="xcomlog-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def received_bytes(client: Any) -> Callable[[], float]:
    """The counter of bytes the client's link received."""
    return lambda: float(client.transport.stats().get("bytes_received", 0))


def requests_sent(client: Any) -> Callable[[], float]:
    """The counter of requests the client made."""
    return lambda: float(client.session.stats.requests)


def note_quiet_window(client: Any) -> None:
    """Say so when the polite mode's quiet window will hold the first request back."""
    polite = getattr(client.session, "polite", None)
    if polite is None:
        return
    remaining = polite.quiet_remaining()
    if remaining > 0:
        until = dt.datetime.now() + dt.timedelta(seconds=remaining)
        note(
            f"waiting {remaining:.0f} s for the quiet window to end (until {until:%H:%M:%S}); "
            "Ctrl-C to give up"
        )


__all__ = [
    "following",
    "note",
    "note_quiet_window",
    "on_terminal",
    "received_bytes",
    "requests_sent",
]
