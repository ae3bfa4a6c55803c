"""
ASGI entry point: HTTP through Django, WebSockets through Channels, both
behind ProxyHeaders (who the client is). The worker launcher
(project.serve) tunes the process around it.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from project.common.clients import ProxyHeaders  # noqa: E402
from project.routing import websocket_application  # noqa: E402

application = ProxyHeaders(
    ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application})
)
