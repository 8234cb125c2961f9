from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "kefu.accounts"
    label = "accounts"

    def ready(self) -> None:
        # Infrastructure, not domain behaviour: the sign-in rate limit's database cache table
        # (settings.CACHES["ratelimit"] without Redis) exists after every `migrate`, including
        # after switching an installation from Redis back to the database.
        post_migrate.connect(create_cache_tables, sender=self)


def create_cache_tables(using: str = "default", **kwargs: Any) -> None:
    """Create the tables of database-backed caches that are missing (idempotent)."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)
