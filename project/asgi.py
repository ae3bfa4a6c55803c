"""
ASGI entry point: HTTP through Django, WebSockets through Channels.
"""

import asyncio
import gc
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from project.routing import websocket_application  # noqa: E402

CLOSE_GOING_AWAY = 1001


def close_sockets_on_shutdown(grace_s: float) -> None:
    """
    On SIGTERM Daphne cancels every consumer and drops the sockets without a
    close frame: the apps see 1006 and the consumers never leave their
    groups. Instead, when Daphne's reactor shuts down: stop listening (the
    balancer sends new sockets elsewhere), close every open socket with 1001
    "going away" so the apps reconnect at once through the balancer, wait up
    to `grace_s` for the consumers' disconnect, and only then let Daphne
    cancel whatever is left.

    Only where Daphne has installed its reactor already (daphne.server is
    imported before the application): importing the reactor anywhere else
    would install Twisted's default one. Costs nothing per socket.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return
    from twisted.internet.defer import Deferred

    async def drain(server) -> None:
        for listener in getattr(server, "listeners", []):
            listener.addCallback(lambda port: port.stopListening())
        sockets = [
            (protocol, details.get("application_instance"))
            for protocol, details in list(server.connections.items())
            if hasattr(protocol, "sendCloseFrame") and protocol.state == protocol.STATE_OPEN
        ]
        for protocol, _ in sockets:
            # Autobahn lets applications close only with 1000 or 3000-4999;
            # 1001 is the server's own word, so it goes to the protocol.
            protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server restarting")
        consumers = [app for _, app in sockets if app is not None and not app.done()]
        if consumers:
            await asyncio.wait(consumers, timeout=grace_s)

    def before_shutdown():
        # Daphne's own trigger (registered after this one) cancels every
        # consumer; run it only once the sockets are drained.
        event = reactor._eventTriggers.get("shutdown")
        kill = next(
            (
                c
                for c, _, _ in (event.before if event else [])
                if getattr(c, "__name__", "") == "kill_all_applications"
            ),
            None,
        )
        if kill is None:
            return None
        reactor.removeSystemEventTrigger(("shutdown", ("before", kill, (), {})))
        drained = Deferred.fromFuture(asyncio.ensure_future(drain(kill.__self__)))
        return drained.addBoth(lambda _: kill())

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


def tune_garbage_collector(thresholds: str) -> None:
    """
    A worker holds thousands of sockets, and with them over a million objects
    the cyclic garbage collector tracks. With Python's default thresholds
    (a young collection every 2,000 allocations) objects that live a little
    while reach the old generation quickly, and its full collections, which
    scan every tracked object, stopped the worker for 0.1-0.8 s several
    times a minute at 10,000 drivers: the matching tail (docs/benchmarks.md,
    Decisions, "Garbage collector").

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


close_sockets_on_shutdown(float(os.environ.get("SHUTDOWN_GRACE_S", "5")))
tune_garbage_collector(os.environ.get("GC_THRESHOLDS", "50000,20,10"))

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application})
