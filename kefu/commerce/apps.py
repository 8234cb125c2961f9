from django.apps import AppConfig


class CommerceConfig(AppConfig):
    name = "kefu.commerce"
    label = "commerce"

    def ready(self) -> None:
        from kefu.commerce import subscribers  # noqa: F401  (registers the subscribers)
