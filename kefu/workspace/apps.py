from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    name = "kefu.workspace"
    label = "workspace"

    def ready(self) -> None:
        # Imported for its subscriptions: domain events become pushes to agents' browsers.
        from kefu.workspace import realtime  # noqa: F401
