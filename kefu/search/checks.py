"""System check: the engine's schema (FTS5 table and triggers, or GIN indexes) is in place."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import connection


@checks.register(checks.Tags.database)
def search_schema(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from kefu.search.engines import MESSAGE_TABLE, engine_for

    try:
        if MESSAGE_TABLE not in connection.introspection.table_names():
            return []  # not migrated yet: the migration installs the schema
        installed = engine_for(connection).is_installed(connection)
    except Exception:  # no database yet, or an unsupported one: other checks say so
        return []
    if installed:
        return []
    return [
        checks.Warning(
            "the search index schema is missing or incomplete (a migration rebuilt its table?)",
            hint="run `kefu search reindex`: it re-creates the schema and refills the index",
            id="search.W001",
        )
    ]
