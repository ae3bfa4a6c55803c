"""
The worker launcher: `python -m project.serve [Daphne's options]
project.asgi:application`. It is Daphne's own command line, with two things
around it that belong to a serving process and not to importing the app:

- on SIGTERM, open sockets are closed with 1001 "going away" and drained
  for SHUTDOWN_GRACE_S before Daphne stops (project.common.adapters);
- each socket's message budget is spent as its frames arrive, before Daphne
  queues them, and what a client leaves unread is bounded
  (project.common.socket_limits);
- the garbage collector is tuned (GC_THRESHOLDS), with everything imported
  at start-up frozen;
- recurring series are materialised every SERIES_MATERIALISE_EVERY_S on a
  thread (on by default under DEBUG, i.e. `make run`; production uses the
  systemd timer);
- the notification outbox is delivered on a thread (NOTIFY_IN_PROCESS, on
  by default under DEBUG; production runs `manage.py notify`).
"""

from __future__ import annotations

import gc
import os
import sys

from django.core.exceptions import ImproperlyConfigured


def tune_garbage_collector(thresholds: str) -> None:
    """
    A worker holds thousands of sockets, and with them over a million objects
    the cyclic garbage collector tracks. With Python's default thresholds
    (a young collection every 2,000 allocations) objects that live a little
    while reach the old generation quickly, and its full collections, which
    scan every tracked object, stopped the worker several times a minute at
    10,000 drivers (docs/benchmarks.md, Decisions).

    So: what was imported at start-up is frozen (never scanned again), and
    young collections wait for `thresholds`' first number of allocations,
    so fewer objects get old enough to reach the old generation.
    `thresholds` is three numbers as `gc.set_threshold` takes them; empty
    keeps Python's own.
    """
    if not thresholds.strip():
        return
    try:
        values = [int(n) for n in thresholds.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 0:
        raise ImproperlyConfigured(
            f"GC_THRESHOLDS is three whole numbers such as 50000,20,10, not {thresholds!r}."
        )
    gc.freeze()
    gc.set_threshold(*values)


def main(argv: list[str]) -> None:
    # Daphne's server module installs Twisted's asyncio reactor; the
    # shutdown adapter needs it installed first.
    import daphne.server  # noqa: F401
    from daphne.cli import CommandLineInterface

    import project.asgi  # noqa: F401  (the app, loaded before the freeze)
    from project.common.adapters import close_sockets_on_shutdown, gate_messages, gate_replies
    from project.common.socket_limits import admit_frame, bound_reply

    close_sockets_on_shutdown(float(os.environ.get("SHUTDOWN_GRACE_S", "5")))
    # Each socket's message budget, spent as its frames arrive; what its
    # client leaves unread, bounded.
    gate_messages(admit_frame)
    gate_replies(bound_reply)
    # Once project.asgi has set Django up: the series module imports models.
    from django.conf import settings

    from dispatch.notify.delivery import start_delivering
    from dispatch.series import start_materialising

    start_materialising(settings.SERIES_MATERIALISE_EVERY_S)
    start_delivering()
    tune_garbage_collector(os.environ.get("GC_THRESHOLDS", "50000,20,10"))
    CommandLineInterface().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
