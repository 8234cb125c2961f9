"""Websocket routes; each app adds its consumers here (workspace, chat widget)."""

websocket_urlpatterns: list = []
