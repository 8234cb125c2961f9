from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "kefu.conversations"
    label = "conversations"

    def ready(self) -> None:
        # Imported for their registrations: the built-in enrichment hooks, and the
        # message.queued subscriber that enqueues deliver_message.
        from kefu.conversations import enrichment, tasks  # noqa: F401
