"""What the probes of the operator and the facade check, from their informers.

Ready: every informer has listed once (until then the indexes are partial and a reader would
answer from half a cluster). Live: every informer's loop runs and its watch made progress (a list,
an event, a bookmark, or the normal end of a watch) within STALE_WATCH_TIMEOUTS watch timeouts.
An idle watch still progresses: the API server sends bookmarks (requested with allowWatchBookmarks)
and ends each watch after its timeout, after which the informer watches again. So a watch that is
stuck (a connection that stays open but carries nothing) turns liveness red, not only a dead task.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from .informer import Informer

# Watch timeouts without progress after which a watch counts as stuck, and the slack for the
# reconnect after a timeout (the informer's read timeout is the watch timeout plus 30 s).
STALE_WATCH_TIMEOUTS = 2
RECONNECT_SLACK = 60.0


def informers_ready(informers: Iterable[Informer]) -> bool:
    return all(informer.has_listed for informer in informers)


def informers_live(informers: Iterable[Informer], now: float | None = None) -> bool:
    now = time.monotonic() if now is None else now
    return all(
        informer.running
        and now - informer.last_progress <= STALE_WATCH_TIMEOUTS * informer.watch_timeout + RECONNECT_SLACK
        for informer in informers
    )
