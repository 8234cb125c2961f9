"""The two search engines behind one interface, chosen by the database vendor.

- SQLite: an FTS5 table over ``search_messageentry.document`` (external content: the engine
  inserts each new row's terms itself; triggers keep it in step with updates and deletes),
  ``ascii`` tokenizer: the terms are analyzed by :mod:`kefu.search.text` already, so FTS5 only
  splits on the spaces between them.
- PostgreSQL: ``document`` is a ``tsvector`` built from the same terms (with their positions,
  for phrases) under a GIN index.

Relevance is a term-frequency score with length normalization over the candidates only: on
SQLite the query terms' occurrences counted in the stored document, on PostgreSQL ``ts_rank``
(normalized by document length). Not bm25: FTS5 computes bm25's inverse document frequencies by
reading every posting of every query term, 26 ms for a common word over 1,000,000 messages,
while the candidates, which all contain all the terms, would share them anyway.

Both take the same parsed query (:class:`kefu.search.query.ParsedQuery`) and answer the same
candidate question: the newest ``limit`` index rows matching it within a scope, with a relevance
each. Ranking, grouping and scoping checks happen above, in :mod:`kefu.search.service`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection as default_connection

from kefu.core.bulk import COPY_MIN_ROWS, copy_rows
from kefu.search.query import ParsedQuery

MESSAGE_TABLE = "search_messageentry"
CUSTOMER_TABLE = "search_customerentry"
# PostgreSQL keeps term positions up to 16383 (later ones would all collapse onto it).
MAX_POSITION = 16383


@dataclass(frozen=True, slots=True)
class Scope:
    """Where to look. ``inbox_ids`` None means every inbox (someone who sees them all).

    ``statuses`` and ``assignee`` filter on the conversation (``assignee`` 0 means unassigned);
    ``since``/``until`` on the message's time.
    """

    inbox_ids: list[int] | None = None
    statuses: list[str] | None = None
    assignee: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class Candidate(NamedTuple):
    message_id: int
    conversation_id: int
    # Seconds since the Unix epoch: 400 candidates' datetimes cost more to load than to rank.
    sent_epoch: float
    relevance: float


class Engine:
    vendor = ""

    def encode(self, terms: list[str], key: int, inbox: int | None = None) -> str:
        """The ``document`` value for ``terms`` (in text order) of the row with id ``key``
        (a message of ``inbox``; None for a customer)."""
        return self.complete(self.encode_terms(terms), key, inbox)

    def encode_terms(self, terms: list[str]) -> str:
        """The part of a document that depends on its terms alone. A received message's is
        made before the message has an id, outside the transaction that stores it (see
        kefu.search.subscribers), and :meth:`complete` finishes it inside."""
        raise NotImplementedError

    def complete(self, encoded: str, key: int, inbox: int | None = None) -> str:
        """The document of row ``key`` (of ``inbox``) from its :meth:`encode_terms` value."""
        return encoded

    def match(self, query: ParsedQuery) -> str:
        """The engine's match expression for ``query`` (never empty: check query.is_empty)."""
        raise NotImplementedError

    def install(self, conn: Any = None, *, concurrently: bool = False) -> None:
        """Create the engine's tables/indexes/triggers (idempotent)."""
        raise NotImplementedError

    def uninstall(self, conn: Any = None) -> None:
        raise NotImplementedError

    def is_installed(self, conn: Any = None) -> bool:
        raise NotImplementedError

    def message_candidates(self, query: ParsedQuery, scope: Scope, limit: int) -> list[Candidate]:
        raise NotImplementedError

    def customer_candidates(self, query: ParsedQuery, limit: int) -> list[tuple[int, float]]:
        raise NotImplementedError

    def before_bulk_load(self) -> None:
        """Prepare an empty index for a reindex (after ``uninstall`` and emptying the tables)."""
        self.install()

    def after_bulk_load(self) -> None:
        """Finish a reindex: (re)build what was deferred, merge FTS5 segments, ANALYZE."""

    # --- shared SQL --------------------------------------------------------------------------

    def document_placeholder(self) -> str:
        return "%s"

    def write_messages(self, cursor: Any, rows: list[tuple], *, replace: bool) -> None:
        """Upsert (message_id, conversation_id, inbox_id, sent_at, document) ``rows``."""
        cursor.executemany(self.upsert_messages_sql(replace=replace), rows)

    def insert_new_messages(self, cursor: Any, rows: list[tuple]) -> None:
        """Insert (message_id, conversation_id, inbox_id, sent_at, document) ``rows`` of
        messages stored by the current transaction (no entry can exist for them yet)."""
        self.write_messages(cursor, rows, replace=False)

    def write_customers(self, cursor: Any, rows: list[tuple]) -> None:
        """Upsert (customer_id, document, source_updated_at) ``rows``."""
        cursor.executemany(self.upsert_customers_sql(), rows)

    def upsert_messages_sql(self, *, replace: bool) -> str:
        """INSERT of (message_id, conversation_id, inbox_id, sent_at, document) rows.

        ``replace``: overwrite an existing row (re-analysis); otherwise keep it (catch-up).
        """
        conflict = (
            "DO UPDATE SET conversation_id = excluded.conversation_id, "
            "inbox_id = excluded.inbox_id, sent_at = excluded.sent_at, "
            "document = excluded.document"
            if replace
            else "DO NOTHING"
        )
        return (
            f"INSERT INTO {MESSAGE_TABLE} (message_id, conversation_id, inbox_id, sent_at, "  # noqa: S608
            f"document) VALUES (%s, %s, %s, %s, {self.document_placeholder()}) "
            f"ON CONFLICT (message_id) {conflict}"
        )

    def upsert_customers_sql(self) -> str:
        # Rewrites only when the document changed: on SQLite an unchanged row then costs no
        # FTS5 work, on PostgreSQL no new row version.
        return (
            f"INSERT INTO {CUSTOMER_TABLE} (customer_id, document, source_updated_at) "  # noqa: S608
            f"VALUES (%s, {self.document_placeholder()}, %s) ON CONFLICT (customer_id) DO UPDATE "
            "SET document = excluded.document, source_updated_at = excluded.source_updated_at "
            f"WHERE {CUSTOMER_TABLE}.document <> excluded.document "
            f"OR {CUSTOMER_TABLE}.source_updated_at <> excluded.source_updated_at"
        )

    def _scope_sql(self, scope: Scope, params: list[Any]) -> tuple[str, str]:
        """(extra JOIN, extra WHERE) for ``scope``; appends the WHERE's params to ``params``."""
        from kefu.conversations.models import Conversation

        join, where = "", []
        if scope.inbox_ids is not None:
            where.append(self._in("e.inbox_id", scope.inbox_ids, params))
        if scope.since is not None:
            where.append("e.sent_at >= %s")
            params.append(default_connection.ops.adapt_datetimefield_value(scope.since))
        if scope.until is not None:
            where.append("e.sent_at < %s")
            params.append(default_connection.ops.adapt_datetimefield_value(scope.until))
        if scope.statuses or scope.assignee is not None:
            join = f" JOIN {Conversation._meta.db_table} c ON c.id = e.conversation_id"
            if scope.statuses:
                where.append(self._in("c.status", scope.statuses, params))
            if scope.assignee == 0:
                where.append("c.assignee_id IS NULL")
            elif scope.assignee is not None:
                where.append("c.assignee_id = %s")
                params.append(scope.assignee)
        return join, "".join(f" AND {w}" for w in where)

    @staticmethod
    def _in(column: str, values: list, params: list[Any]) -> str:
        if not values:
            return "1 = 0"
        params.extend(values)
        return f"{column} IN ({', '.join(['%s'] * len(values))})"


class SqliteEngine(Engine):
    vendor = "sqlite"
    MESSAGE_FTS = "search_message_fts"
    CUSTOMER_FTS = "search_customer_fts"

    def encode_terms(self, terms: list[str]) -> str:
        return " ".join(terms)

    def match(self, query: ParsedQuery) -> str:
        phrases = []
        for phrase in query.phrases:
            parts = [f'"{term.text}"' + ("*" if term.prefix else "") for term in phrase]
            phrases.append(" + ".join(parts))
        return " AND ".join(phrases)

    def _tables(self) -> list[tuple[str, str, str]]:
        return [
            (self.MESSAGE_FTS, MESSAGE_TABLE, "message_id"),
            (self.CUSTOMER_FTS, CUSTOMER_TABLE, "customer_id"),
        ]

    # New rows reach the FTS5 table by a second INSERT of (rowid, document), not by a trigger:
    # a statement that fires a trigger runs in a statement savepoint, and FTS5 writes its pending
    # terms out as a new segment at every savepoint, so a trigger made one segment per row and
    # FTS5 spent most of its time merging them (37 against 12.6 µs a row, both tables counted:
    # bench/RESULTS.md, session 8). Updates and deletes, rare, keep their triggers. The callers
    # run these in a transaction (SQLite's write lock is held from its start: IMMEDIATE), so
    # reading which rows exist before writing is safe; outside one, a race fails the INSERT
    # (unique key) and the catch-up writes the entry later.

    def insert_new_messages(self, cursor: Any, rows: list[tuple]) -> None:
        # A row that exists after all fails the caller's savepoint (as COPY does on PostgreSQL).
        if not rows:
            return
        cursor.executemany(
            f"INSERT INTO {MESSAGE_TABLE} (message_id, conversation_id, inbox_id, sent_at, "  # noqa: S608
            "document) VALUES (%s, %s, %s, %s, %s)",
            rows,
        )
        self._index_new(cursor, self.MESSAGE_FTS, [(row[0], row[4]) for row in rows])

    def write_messages(self, cursor: Any, rows: list[tuple], *, replace: bool) -> None:
        # Rows that exist are rewritten (``replace``) or kept (a catch-up racing another
        # writer); the others are inserted and indexed. Not ``ON CONFLICT ... RETURNING``:
        # SQLite before 3.35 lacks it.
        rows = list({row[0]: row for row in rows}.values())
        existing = self._existing(cursor, MESSAGE_TABLE, "message_id", [row[0] for row in rows])
        updates = [(*row[1:], row[0]) for row in rows if row[0] in existing] if replace else []
        if updates:
            # The update trigger moves the terms in FTS5 (old out, new in).
            cursor.executemany(
                f"UPDATE {MESSAGE_TABLE} SET conversation_id = %s, inbox_id = %s, "  # noqa: S608
                "sent_at = %s, document = %s WHERE message_id = %s",
                updates,
            )
        self.insert_new_messages(cursor, [row for row in rows if row[0] not in existing])

    def write_customers(self, cursor: Any, rows: list[tuple]) -> None:
        rows = list({row[0]: row for row in rows}.values())
        existing = self._existing(
            cursor, CUSTOMER_TABLE, "customer_id", [row[0] for row in rows], "document"
        )
        new = [row for row in rows if row[0] not in existing]
        # Rewrites only what changed: an unchanged document costs FTS5 nothing, a new version
        # of the same terms only its timestamp (the trigger fires on document updates only).
        changed = [(row[1], row[2], row[0]) for row in rows
                   if row[0] in existing and existing[row[0]] != row[1]]  # fmt: skip
        restamped = [(row[2], row[0]) for row in rows
                     if row[0] in existing and existing[row[0]] == row[1]]  # fmt: skip
        if changed:
            cursor.executemany(
                f"UPDATE {CUSTOMER_TABLE} SET document = %s, source_updated_at = %s "  # noqa: S608
                "WHERE customer_id = %s",
                changed,
            )
        if restamped:
            cursor.executemany(
                f"UPDATE {CUSTOMER_TABLE} SET source_updated_at = %s "  # noqa: S608
                "WHERE customer_id = %s AND source_updated_at IS NOT %s",
                [(stamp, pk, stamp) for stamp, pk in restamped],
            )
        if new:
            cursor.executemany(
                f"INSERT INTO {CUSTOMER_TABLE} (customer_id, document, source_updated_at) "  # noqa: S608
                "VALUES (%s, %s, %s)",
                new,
            )
            self._index_new(cursor, self.CUSTOMER_FTS, [(row[0], row[1]) for row in new])

    @staticmethod
    def _existing(
        cursor: Any, table: str, key: str, ids: list[int], column: str = ""
    ) -> dict[int, Any]:
        """The rows of ``ids`` that ``table`` holds: id -> ``column``'s value (or None)."""
        found: dict[int, Any] = {}
        value = column or "NULL"
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cursor.execute(
                f"SELECT {key}, {value} FROM {table} "  # noqa: S608
                f"WHERE {key} IN ({', '.join(['%s'] * len(chunk))})",
                chunk,
            )
            found.update(cursor.fetchall())
        return found

    @staticmethod
    def _index_new(cursor: Any, fts: str, rows: list[tuple[int, str]]) -> None:
        if rows:
            cursor.executemany(f"INSERT INTO {fts}(rowid, document) VALUES (%s, %s)", rows)  # noqa: S608

    def install(self, conn: Any = None, *, concurrently: bool = False) -> None:
        conn = conn or default_connection
        with conn.cursor() as cursor:
            for fts, table, key in self._tables():
                for statement in _sqlite_schema(fts, table, key):
                    cursor.execute(statement)

    def uninstall(self, conn: Any = None) -> None:
        conn = conn or default_connection
        with conn.cursor() as cursor:
            for fts, table, _ in self._tables():
                # "ai": the insert trigger of schemas before migration 0005.
                for suffix in ("ai", "ad", "au"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix}")
                cursor.execute(f"DROP TABLE IF EXISTS {fts}")

    def is_installed(self, conn: Any = None) -> bool:
        conn = conn or default_connection
        expected = {name for fts, table, _ in self._tables()
                    for name in (fts, f"{table}_ad", f"{table}_au")}  # fmt: skip
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE name IN (%s, %s) "
                "OR (type = 'trigger' AND tbl_name IN (%s, %s))",
                [self.MESSAGE_FTS, self.CUSTOMER_FTS, MESSAGE_TABLE, CUSTOMER_TABLE],
            )
            # An insert trigger left over would index every new row twice.
            return {row[0] for row in cursor.fetchall()} == expected

    def message_candidates(self, query: ParsedQuery, scope: Scope, limit: int) -> list[Candidate]:
        relevance, params = _sqlite_relevance(query)
        params.append(self.match(query))
        join, where = self._scope_sql(scope, params)
        params.append(limit)
        fts = self.MESSAGE_FTS
        # Newest first by rowid (the message id): FTS5 walks its doclists backwards and stops
        # at the limit, so a common word costs no more than a rare one.
        sql = (
            # The epoch from SQLite's stored text (julianday parses it; 2440587.5 is 1970-01-01).
            "SELECT e.message_id, e.conversation_id, (julianday(e.sent_at) - 2440587.5) * 86400.0, "  # noqa: S608
            f"{relevance} "
            f"FROM {fts} JOIN {MESSAGE_TABLE} e ON e.message_id = {fts}.rowid{join} "
            f"WHERE {fts} MATCH %s{where} ORDER BY {fts}.rowid DESC LIMIT %s"
        )
        with default_connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [Candidate(m, c, float(s), float(r)) for m, c, s, r in rows]

    def customer_candidates(self, query: ParsedQuery, limit: int) -> list[tuple[int, float]]:
        fts = self.CUSTOMER_FTS
        sql = (
            f"SELECT rowid FROM {fts} WHERE {fts} MATCH %s "  # noqa: S608
            "ORDER BY rowid DESC LIMIT %s"
        )
        with default_connection.cursor() as cursor:
            cursor.execute(sql, [self.match(query), limit])
            # Newest customers first; exact identifiers rank above these anyway.
            return [(int(pk), 1.0 / (rank + 1)) for rank, (pk,) in enumerate(cursor.fetchall())]

    def after_bulk_load(self) -> None:
        with default_connection.cursor() as cursor:
            for fts, _, _ in self._tables():
                cursor.execute(f"INSERT INTO {fts}({fts}) VALUES ('optimize')")  # noqa: S608
            cursor.execute("ANALYZE")


# Length normalization in the manner of bm25 (k1 = 1.2, b = 0.75, an average message of about
# 40 terms): a short message that mentions the words ranks above a long one that does too.
_AVERAGE_TERMS = 40.0


def _sqlite_relevance(query: ParsedQuery) -> tuple[str, list[Any]]:
    """A SQL expression scoring ``e.document`` for ``query``'s terms, with its parameters.

    Occurrences of " term" in " " || document (a prefix term counts its longer words too);
    string functions in C over a few hundred candidates cost well under a millisecond.
    """
    doc = "(' ' || e.document)"
    params: list[Any] = []
    counts = []
    for text in sorted({term.text for term in query.terms()}):
        needle = " " + text
        counts.append(f"(length({doc}) - length(replace({doc}, %s, ''))) / {len(needle)}.0")
        params.append(needle)
    tf = " + ".join(counts) or "0"
    terms = f"(length({doc}) - length(replace({doc}, ' ', '')))"
    norm = f"1.2 * (0.25 + 0.75 * {terms} / {_AVERAGE_TERMS})"
    return f"({tf}) / (({tf}) + {norm})", params + params


# FTS5 merges a level's segments into one when this many exist (its default: 4). Each merge
# rewrites what it merges inside the writing transaction, under SQLite's single write lock:
# at 8, a received message's entry costs ~4-10 µs less to write, and a query may read up to 7
# segments a level instead of 3, which measured no slower at 1,000,000 messages (both:
# bench/sqlite_entries.py, bench/RESULTS.md session 9). `kefu search reindex` ends with one
# merged segment.
FTS5_AUTOMERGE = 8


def _sqlite_schema(fts: str, table: str, key: str) -> list[str]:
    # Table names are this module's constants, never input.
    delete = (
        f"INSERT INTO {fts}({fts}, rowid, document) VALUES ('delete', old.{key}, old.document);"  # noqa: S608
    )
    insert = f"INSERT INTO {fts}(rowid, document) VALUES (new.{key}, new.document);"  # noqa: S608
    # No insert trigger: the engine indexes new rows itself (see SqliteEngine.insert_new_messages).
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(document, content='{table}', "
        f"content_rowid='{key}', tokenize='ascii')",
        # Segments merge when FTS5_AUTOMERGE of a level exist, inside the writing transaction.
        f"INSERT INTO {fts}({fts}, rank) VALUES ('automerge', {FTS5_AUTOMERGE})",  # noqa: S608
        f"CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON {table} BEGIN {delete} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_au AFTER UPDATE OF document ON {table} "
        f"BEGIN {delete} {insert} END",
    ]


# GIN's "fast update" queues new rows in a pending list that every query reads in full until
# it is merged into the index. At PostgreSQL's default limit (4 MB, ~3,000 messages) a shop
# whose inserts never reach it carries an almost full list for hours, and each of a search's
# statements reads ~250 list pages: measured 2-3 ms a statement, 15-20 ms a search at
# 1,000,000 messages. 512 kB caps the list at 64 pages; merging it that often costs ~20-30 µs
# more per inserted row (bench/RESULTS.md, "GIN pending list").
GIN_PENDING_LIST_KB = 512


# "':1", "':2", ...: a term and its position's suffix make one concatenation in C, half the time
# of formatting each term (the literal is built for every message received).
_POSITION_SUFFIXES = tuple(f"':{position}" for position in range(1, MAX_POSITION + 1))


class PostgresEngine(Engine):
    vendor = "postgresql"
    MESSAGE_INDEX = "search_messageentry_document"
    CUSTOMER_INDEX = "search_customerentry_document"

    def document_placeholder(self) -> str:
        return "%s::tsvector"

    # One statement per batch, its columns as arrays: executemany sends and plans a statement
    # per row (measured: 145 µs a message in-process, half of it in the driver).
    def write_messages(self, cursor: Any, rows: list[tuple], *, replace: bool) -> None:
        rows = list({row[0]: row for row in rows}.values())  # one upsert may touch a row once
        values = (
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], "
            "%s::timestamptz[], %s::text[]::tsvector[])"
        )
        sql = self.upsert_messages_sql(replace=replace).replace(
            "VALUES (%s, %s, %s, %s, %s::tsvector)", values
        )
        cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])

    # COPY: the rows are formatted by the driver's C code and parsed by the server's COPY path,
    # where the statement above quotes five Python lists into a literal for the server to parse
    # as arrays (measured: 2.3 against 8-10 µs a row in the worker). Should a row exist after
    # all, the unique violation fails the caller's savepoint and the catch-up indexes the rows.
    def insert_new_messages(self, cursor: Any, rows: list[tuple]) -> None:
        if len(rows) < COPY_MIN_ROWS:  # one statement, one round trip (see COPY_MIN_ROWS)
            self.write_messages(cursor, rows, replace=False)
            return
        columns = "message_id, conversation_id, inbox_id, sent_at, document"
        copy_rows(cursor.db, f"COPY {MESSAGE_TABLE} ({columns}) FROM STDIN", rows)

    def write_customers(self, cursor: Any, rows: list[tuple]) -> None:
        rows = list({row[0]: row for row in rows}.values())
        values = "SELECT * FROM unnest(%s::bigint[], %s::text[]::tsvector[], %s::timestamptz[])"
        sql = self.upsert_customers_sql().replace("VALUES (%s, %s::tsvector, %s)", values)
        cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])

    def encode_terms(self, terms: list[str]) -> str:
        # A tsvector literal: the terms are letters, digits and marks only, so quoting them
        # needs no escapes. The literal form bypasses PostgreSQL's parser (whose idea of a
        # letter depends on the server's locale).
        words = "'" + " '".join(map(str.__add__, terms, _POSITION_SUFFIXES)) if terms else ""
        if len(terms) > MAX_POSITION:  # PostgreSQL's last position holds the rest
            words += " " + " ".join(f"'{term}':{MAX_POSITION}" for term in terms[MAX_POSITION:])
        return words

    def complete(self, encoded: str, key: int, inbox: int | None = None) -> str:
        # The row's recency lexemes and, for a message, its inbox's (see inbox_lexeme).
        extra = recency_lexemes(key) + _inbox_suffix(inbox)
        return f"{encoded} {extra}" if encoded else extra

    def match(self, query: ParsedQuery) -> str:
        phrases = []
        for phrase in query.phrases:
            parts = [f"'{term.text}'" + (":*" if term.prefix else "") for term in phrase]
            phrases.append("(" + " <-> ".join(parts) + ")")
        return " & ".join(phrases)

    def install(self, conn: Any = None, *, concurrently: bool = False) -> None:
        conn = conn or default_connection
        how = "CONCURRENTLY " if concurrently else ""
        with conn.cursor() as cursor:
            for name, table in (
                (self.MESSAGE_INDEX, MESSAGE_TABLE),
                (self.CUSTOMER_INDEX, CUSTOMER_TABLE),
            ):
                cursor.execute(
                    f"CREATE INDEX {how}IF NOT EXISTS {name} ON {table} USING gin (document) "
                    f"WITH (gin_pending_list_limit = {GIN_PENDING_LIST_KB})"
                )

    def uninstall(self, conn: Any = None) -> None:
        conn = conn or default_connection
        with conn.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {self.MESSAGE_INDEX}")
            cursor.execute(f"DROP INDEX IF EXISTS {self.CUSTOMER_INDEX}")

    def is_installed(self, conn: Any = None) -> bool:
        conn = conn or default_connection
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_indexes WHERE indexname IN (%s, %s)",
                [self.MESSAGE_INDEX, self.CUSTOMER_INDEX],
            )
            return cursor.fetchone()[0] == 2

    def message_candidates(self, query: ParsedQuery, scope: Scope, limit: int) -> list[Candidate]:
        # The inbox scope goes into the tsquery too, for the GIN index to intersect: filtered
        # after the index instead, an agent who sees a third of the inboxes needs three times
        # the windows (the SQL filter stays: it is the authority, the lexemes an accelerator).
        inboxes = ""
        if scope.inbox_ids:
            inboxes = " | ".join(f"'{inbox_lexeme(i)}'" for i in sorted(scope.inbox_ids))
        scope_params: list[Any] = []
        join, where = self._scope_sql(scope, scope_params)
        sql = (
            # ts_rank normalization 1: divided by 1 + the log of the document's length.
            "SELECT e.message_id, e.conversation_id, extract(epoch FROM e.sent_at)::float8, "  # noqa: S608
            "ts_rank(e.document, %s::tsquery, 1) "
            f"FROM {MESSAGE_TABLE} e{join} WHERE e.document @@ %s::tsquery "
            f"AND e.message_id < %s{where} ORDER BY e.message_id DESC LIMIT %s"
        )
        rows = self._newest(
            MESSAGE_TABLE, "message_id", query, sql, scope_params, limit, True, inboxes
        )
        return [Candidate(m, c, s, float(r)) for m, c, s, r in rows]

    def customer_candidates(self, query: ParsedQuery, limit: int) -> list[tuple[int, float]]:
        sql = (
            f"SELECT e.customer_id FROM {CUSTOMER_TABLE} e "  # noqa: S608
            "WHERE e.document @@ %s::tsquery AND e.customer_id < %s "
            "ORDER BY e.customer_id DESC LIMIT %s"
        )
        rows = self._newest(CUSTOMER_TABLE, "customer_id", query, sql, [], limit, False)
        return [(int(pk), 1.0 / (rank + 1)) for rank, (pk,) in enumerate(rows)]

    def _newest(
        self,
        table: str,
        key: str,
        query: ParsedQuery,
        sql: str,
        extra: list,
        limit: int,
        ranked: bool,
        restrict: str = "",
    ) -> list[tuple]:
        """The newest ``limit`` rows matching ``query``, window by window (see recency_windows).

        ``sql`` takes ([tsquery for ranking,] tsquery to match, upper key bound, *extra, limit).
        """
        match = self.match(query)
        rank = match
        if restrict:
            match = f"({match}) & ({restrict})"
        with default_connection.cursor() as cursor:
            cursor.execute(f"SELECT max({key}) FROM {table}")  # noqa: S608
            newest = cursor.fetchone()[0]
            if newest is None:
                return []
            found: list[tuple] = []
            # A prefix builds the whole bitmap of every word it starts whatever the window, so
            # windows would pay for it once each: one unrestricted query instead (PostgreSQL
            # then walks the key backwards when the prefix is common, sorts when it is rare).
            windows = [(newest + 1, "")] if query.has_prefixes else recency_windows(newest)
            for upper, lexemes in windows:
                windowed = f"({match}) & ({lexemes})" if lexemes else match
                params = [windowed, upper, *extra, limit - len(found)]
                cursor.execute(sql, [rank, *params] if ranked else params)
                found.extend(cursor.fetchall())
                if len(found) >= limit:
                    break
        return found

    def before_bulk_load(self) -> None:
        # Building a GIN index once over all rows is several times faster than growing it row
        # by row; meanwhile queries still answer, by scanning.
        pass

    def after_bulk_load(self) -> None:
        # Concurrently: ingestion keeps writing while the index builds (outside a transaction).
        # Inside one, the deferred foreign-key checks of the rows just written must run first
        # (PostgreSQL refuses to index a table with pending trigger events).
        inside = default_connection.in_atomic_block
        if inside:
            with default_connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        self.install(concurrently=not inside)
        with default_connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {MESSAGE_TABLE}")
            cursor.execute(f"ANALYZE {CUSTOMER_TABLE}")


# --- recency windows (PostgreSQL) ----------------------------------------------------------------
#
# A GIN index yields every row matching a query, in no useful order: for "the newest 400
# matches" PostgreSQL fetches all of them from the table and sorts (90 ms for a word in 1% of
# 1,000,000 messages, most of it reading table pages), or walks the primary key backwards
# testing each row (250 ms when the word is in 0.1%), and its estimates for tsqueries pick the
# wrong one often. So every document also carries, per level, the number of the id bucket it
# falls in (2**14, 2**16, ... ids wide), and the newest matches are asked for window by window,
# newest first: "the query AND in one of the two newest 16k-id buckets", then the next two
# 64k-id buckets, and so on, until enough rows are found. The index intersects the posting
# lists itself, so each step reads only the rows in its window that match: a few milliseconds.

RECENCY_SHIFTS = (14, 16, 18, 20, 22, 24, 26)


def inbox_lexeme(inbox: int) -> str:
    """The lexeme placing a message in its inbox (PostgreSQL): ``#i:5``."""
    return f"#i:{inbox}"


def recency_lexemes(key: int) -> str:
    """The tsvector lexemes placing row ``key`` in its bucket at every level."""
    # Every level's bucket follows from the finest one, and consecutive rows share it (16,384
    # ids): built once per bucket instead of seven formattings per document written.
    return _bucket_lexemes(key >> RECENCY_SHIFTS[0])


@functools.lru_cache(maxsize=64)
def _bucket_lexemes(finest: int) -> str:
    key = finest << RECENCY_SHIFTS[0]
    return " ".join(f"'@{shift}:{key >> shift}'" for shift in RECENCY_SHIFTS)


def _inbox_suffix(inbox: int | None) -> str:
    return "" if inbox is None else _inbox_lexeme_literal(inbox)


@functools.lru_cache(maxsize=1024)
def _inbox_lexeme_literal(inbox: int) -> str:
    return f" '{inbox_lexeme(inbox)}'"


def recency_windows(newest: int) -> list[tuple[int, str]]:
    """(upper key bound, tsquery over bucket lexemes or "" for no restriction), newest first.

    Consecutive windows cover ``[0, newest]`` without overlapping (each query also keeps keys
    below the previous window's lower bound).
    """
    windows: list[tuple[int, str]] = []
    upper = newest + 1
    finer = RECENCY_SHIFTS[0]
    for shift in RECENCY_SHIFTS:
        top = (upper - 1) >> shift
        lower = max(0, (top - 1) << shift)
        if lower == 0:
            # The oldest window keeps a restriction too (unrestricted, the index would hand
            # over every newer match as well, for the table to read and throw away): the
            # finer level's buckets below ``upper``, at most 8 of them.
            last = (upper - 1) >> finer
            windows.append((upper, " | ".join(f"'@{finer}:{b}'" for b in range(last, -1, -1))))
            return windows
        windows.append((upper, f"'@{shift}:{top}' | '@{shift}:{top - 1}'"))
        upper, finer = lower, shift
    windows.append((upper, ""))
    return windows


_ENGINES: dict[str, Engine] = {"sqlite": SqliteEngine(), "postgresql": PostgresEngine()}


def engine_for(conn: Any = None) -> Engine:
    """The engine for ``conn``'s database (the default connection unless given)."""
    vendor = (conn or default_connection).vendor
    try:
        return _ENGINES[vendor]
    except KeyError:
        raise NotImplementedError(f"search supports SQLite and PostgreSQL, not {vendor}") from None
