"""What a started process holds, out of the cyclic garbage collector's sight.

CPython 3.11's collector is not incremental: a full collection walks every object it tracks, in one
pause, and it runs each time the objects that survived the younger collections grow by a quarter. A
started operator or facade tracks its modules' objects (about 80,000) and its caches (a few objects
per Server); a full collection then took 50-120 ms in the operator, while tenant notifications take
30 ms: the pauses were the tail of every tenant's latency. Once the process has started, its objects
are collected once and frozen (gc.freeze): later collections walk only what came after. What is
frozen and later dropped is still freed by reference counting; only a reference cycle among frozen
objects would stay (the caches hold none).
"""

from __future__ import annotations

import gc


def freeze_start_up() -> None:
    """Call once the process has started (its caches listed): collect, then freeze what survived."""
    gc.collect()
    gc.freeze()
