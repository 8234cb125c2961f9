from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "kefu.conversations"
    label = "conversations"

    def ready(self) -> None:
        # Imported for their registrations: the built-in enrichment hooks, and the
        # message.queued subscriber that enqueues deliver_message.
        from kefu.conversations import enrichment, tasks  # noqa: F401

        self._forget_changed_inboxes()

    def _forget_changed_inboxes(self) -> None:
        """Keep the ingest path's inbox memo exact within this process (see selectors)."""
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from kefu.accounts.models import Agent, Team
        from kefu.commerce.models import Store
        from kefu.conversations.models import Inbox, InboxMembership
        from kefu.conversations.selectors import forget_inboxes

        def changed(**kwargs: object) -> None:
            forget_inboxes()

        for model in (Inbox, Store, Agent, InboxMembership):
            for signal in (post_save, post_delete):
                signal.connect(
                    changed, sender=model, weak=False, dispatch_uid=f"inbox-memo-{model}"
                )
        for through in (Team.members.through, Inbox.teams.through):
            m2m_changed.connect(
                changed, sender=through, weak=False, dispatch_uid=f"inbox-memo-{through}"
            )
