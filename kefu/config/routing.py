"""Websocket routes; each app adds its consumers here (workspace, chat widget)."""

from django.urls import path

from kefu.connectors.chat.consumers import ChatConsumer
from kefu.workspace.consumers import WorkspaceConsumer

# The agents' socket: session authentication, same-origin pages only.
websocket_urlpatterns: list = [
    path("ws/workspace/", WorkspaceConsumer.as_asgi()),
]

# The widget's socket: opened from shops' pages on other origins, so it skips the same-origin
# check and checks the Origin against the inbox's allowed origins itself; no cookies are used.
widget_websocket_urlpatterns: list = [
    path("ws/chat/<str:widget_key>/", ChatConsumer.as_asgi()),
]
