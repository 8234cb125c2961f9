from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    name = "kefu.workspace"
    label = "workspace"

    def ready(self) -> None:
        # Imported for its subscriptions: domain events become pushes to agents' browsers.
        # And the chat widget's: replies and read marks become hints to visitors' sockets.
        from kefu.connectors.chat import push  # noqa: F401
        from kefu.workspace import realtime  # noqa: F401
