"""ASGI entry point: HTTP and websockets (Django Channels) in one process for `kefu run`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.config.settings")
django_asgi = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from kefu.config.routing import (  # noqa: E402
    websocket_urlpatterns,
    widget_websocket_urlpatterns,
)

agent_sockets = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))


async def websockets(scope, receive, send):  # type: ignore[no-untyped-def]
    """The chat widget's sockets come from shops' origins; every other socket from kefu's."""
    if scope["path"].startswith("/ws/chat/"):
        return await widget_sockets(scope, receive, send)
    return await agent_sockets(scope, receive, send)


widget_sockets = URLRouter(widget_websocket_urlpatterns)

application = ProtocolTypeRouter({"http": django_asgi, "websocket": websockets})

from kefu.core.gc_tuning import settle_after_startup  # noqa: E402

settle_after_startup()
