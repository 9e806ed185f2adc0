"""Python's garbage collector, tuned for the stretches that build many long-lived objects.

Loading policies and judging keys allocate objects by the hundred thousand and keep most of them (the model,
the engine's caches). With the default thresholds (a young collection every 700 allocations) the collector runs
every few keys and, every hundred young collections or so, walks every object built so far: a quarter to a third
of the judging CPU on the benchmark store. Inside `fewer_collections` the young generation is larger and the heap
that existed on entry is frozen out of the collector's walks (and, in a process forked there, stays in pages it
shares with its parent, since a collection writes to every object it walks).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

THRESHOLDS = (50_000, 20, 100)
_depth = 0  # fewer_collections blocks open in this process


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Larger young generation, and the heap as it is now frozen (again at each nested entry, as before a fork);
    the outermost exit restores both: a notebook that replays gets its collector back unchanged."""
    global _depth
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        gc.set_threshold(*thresholds)
        if _depth == 0:
            gc.unfreeze()
