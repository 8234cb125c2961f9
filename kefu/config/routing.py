"""Websocket routes; each app adds its consumers here (workspace, chat widget)."""

from django.urls import path

from kefu.workspace.consumers import WorkspaceConsumer

websocket_urlpatterns: list = [
    path("ws/workspace/", WorkspaceConsumer.as_asgi()),
]
