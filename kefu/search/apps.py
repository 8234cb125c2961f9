from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "kefu.search"
    label = "search"

    def ready(self) -> None:
        # Imported for their registrations: the domain-event subscribers keeping the index in
        # step, and the system check that the engine's schema (FTS5 table, triggers) is there.
        from kefu.search import checks, identifiers, orders, subscribers  # noqa: F401

        identifiers.register(orders.resolve)
