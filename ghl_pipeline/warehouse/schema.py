"""Create or upgrade, in place, the tables of CONTRACT §3 plus the rejects table and the contact cache.

The real case is a database that already holds ``projects`` and an ``all_calls`` filled by an older feed,
with other columns and no unique ``ghl_id``. :func:`upgrade` adds what is missing and never drops or
rewrites a user's rows. Everything happens in one transaction under an advisory lock, so two syncs
starting together do not race, and a refusal (duplicates blocking a unique index) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

# An arbitrary constant: the key of the advisory lock that serialises schema upgrades.
_UPGRADE_LOCK_KEY = 7_311_004_221

# (column, type) in contract order. New tables get the NOT NULLs; columns added to an existing table
# are nullable, because its old rows have no value for them.
ALL_CALLS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ghl_id", "text"),
    ("project_name", "text"),
    ("ghl_location_id", "text"),
    ("ghl_conversation_id", "text"),
    ("ghl_contact_id", "text"),
    ("ghl_user_id", "text"),
    ("lead_name", "text"),
    ("phone_number", "text"),
    ("direction", "text"),
    ("from_number", "text"),
    ("to_number", "text"),
    ("call_status", "text"),
    ("duration_seconds", "integer"),
    ("agent_name", "text"),
    ("message_type", "text"),
    ("call_started_at", "timestamptz"),
    ("call_date", "date"),
    ("ghl_updated_at", "timestamptz"),
    ("synced_at", "timestamptz"),
)
PROJECTS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("project_name", "text"),
    ("ghl_location_id", "text"),
    ("ghl_api_key", "text"),
    ("active", "boolean DEFAULT true"),
    ("timezone", "text"),
)

_CREATE_PROJECTS = """
CREATE TABLE projects (
    project_name text NOT NULL PRIMARY KEY,
    ghl_location_id text,
    ghl_api_key text,
    active boolean NOT NULL DEFAULT true,
    timezone text
)"""

# ghl_id is an opaque key: byte-order ("C") comparisons make its index cheaper to maintain than a
# linguistic collation would (Supabase databases default to en_US.UTF-8).
# fillfactor 70 leaves room on each page so a re-synced call (new status, duration, agent) is updated
# in place: a HOT update writes no index entries (no indexed column changes) and leaves no dead tuple
# for the indexes. Measured with benchmarks/bench_upsert.py (1M rows, half of them updated): 90 made
# ~12% of updates HOT and the pass ran at ~0.53x of bare COPY, 70 ~45% and ~0.58x, for ~18% more
# table; 60 (~0.60x) and 50 (~0.65x) bought a little more speed with still more space.
ALL_CALLS_FILLFACTOR = 70
_CREATE_ALL_CALLS = f"""
CREATE TABLE all_calls (
    ghl_id text COLLATE "C" NOT NULL,
    project_name text NOT NULL,
    ghl_location_id text NOT NULL,
    ghl_conversation_id text,
    ghl_contact_id text,
    ghl_user_id text,
    lead_name text,
    phone_number text,
    direction text,
    from_number text,
    to_number text,
    call_status text,
    duration_seconds integer,
    agent_name text,
    message_type text,
    call_started_at timestamptz NOT NULL,
    call_date date NOT NULL,
    ghl_updated_at timestamptz,
    synced_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT all_calls_pkey PRIMARY KEY (ghl_id)
) WITH (fillfactor = {ALL_CALLS_FILLFACTOR})"""

# One row per rejected record version. raw_hash makes a re-sync of the same bad record a no-op, while
# a new version of it (GHL changed dateUpdated or a field) is recorded again.
_CREATE_REJECTS = """
CREATE TABLE all_calls_rejects (
    id bigserial PRIMARY KEY,
    ghl_id text,
    project_name text NOT NULL,
    ghl_location_id text,
    rule text NOT NULL,
    detail text,
    raw jsonb NOT NULL,
    raw_hash text GENERATED ALWAYS AS (md5(raw::text)) STORED,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT all_calls_rejects_record_key UNIQUE (project_name, rule, raw_hash)
)"""

_CREATE_CONTACTS = """
CREATE TABLE ghl_contacts (
    location_id text NOT NULL,
    contact_id text NOT NULL,
    name text,
    phone text,
    country text,
    ghl_updated_at timestamptz,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, contact_id)
)"""

# The dashboard's filters: a range of call_date ("Today", "This week"), for every project or one.
# Date first serves both: an all-projects day is one range, and a project's days are the same range
# with project_name checked inside the index (no heap visits). Deliberately the only secondary index:
# every extra one slows the bulk upsert (this one costs ~15% of a merge of new rows; a 4-byte date
# leading the key is cheaper to maintain than the text project name, measured with
# benchmarks/bench_upsert.py).
_INDEXES = {
    "all_calls_date_project_idx": (
        "CREATE INDEX all_calls_date_project_idx ON all_calls (call_date, project_name)"
    ),
    "all_calls_rejects_project_idx": (
        "CREATE INDEX all_calls_rejects_project_idx ON all_calls_rejects (project_name, rejected_at)"
    ),
}
# Indexes earlier versions of this pipeline created and the current one replaces. Only these names
# are ever dropped, and only indexes (never a table, column or row).
_RETIRED_INDEXES = {
    "all_calls_project_date_idx": "replaced by all_calls_date_project_idx (call_date, project_name)",
}


class SchemaUpgradeError(RuntimeError):
    """The schema cannot be upgraded without touching existing rows; nothing was changed."""


class DuplicateCallsError(SchemaUpgradeError):
    """Existing ``all_calls`` rows share a ``ghl_id``, so the unique index cannot be built."""

    def __init__(self, duplicates: list[tuple[str, int]], total: int) -> None:
        self.duplicates = duplicates
        self.total = total
        shown = ", ".join(f"{ghl_id!r} x{count}" for ghl_id, count in duplicates)
        more = f" (and {total - len(duplicates)} more)" if total > len(duplicates) else ""
        super().__init__(
            f"all_calls has {total} ghl_id value(s) on more than one row, so the unique index on ghl_id "
            f"cannot be created: {shown}{more}. Nothing was changed; resolve these rows (keep one per "
            "ghl_id) and run the upgrade again."
        )


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`upgrade` did: tables created, columns and indexes added, notes for the operator."""

    created_tables: tuple[str, ...] = ()
    added_columns: tuple[str, ...] = ()
    created_indexes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    dropped_indexes: tuple[str, ...] = ()
    storage_changes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when the upgrade altered anything."""
        return bool(
            self.created_tables
            or self.added_columns
            or self.created_indexes
            or self.dropped_indexes
            or self.storage_changes
        )


def _columns(conn: sa.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :t"
        ),
        {"t": table},
    )
    return {name: dtype for name, dtype in rows}


def _has_unique_index(conn: sa.Connection, table: str, columns: list[str]) -> bool:
    """True when a non-partial unique index covers exactly ``columns`` (what ON CONFLICT needs)."""
    rows = conn.execute(
        sa.text(
            """
            SELECT array_agg(a.attname::text ORDER BY k.ord)
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
            WHERE c.relname = :t AND n.nspname = current_schema()
              AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
            GROUP BY i.indexrelid
            """
        ),
        {"t": table},
    )
    return any(list(cols) == columns for (cols,) in rows)


def _index_exists(conn: sa.Connection, name: str) -> bool:
    return (
        conn.execute(
            sa.text(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = :n AND n.nspname = current_schema()"
            ),
            {"n": name},
        ).first()
        is not None
    )


_TYPE_NAMES = {
    "text": {"text", "character varying", "character"},
    "integer": {"integer", "bigint", "smallint", "numeric"},
    "timestamptz": {"timestamp with time zone"},
    "date": {"date"},
    "boolean": {"boolean"},
}


def _upgrade_table(
    conn: sa.Connection,
    table: str,
    wanted: tuple[tuple[str, str], ...],
    added: list[str],
    notes: list[str],
) -> None:
    existing = _columns(conn, table)
    for name, ddl_type in wanted:
        if name not in existing:
            # Identifiers come from the constants above, never from input.
            conn.execute(sa.text(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {ddl_type}'))
            added.append(f"{table}.{name}")
        else:
            base = ddl_type.split()[0]
            if existing[name] not in _TYPE_NAMES[base]:
                notes.append(f"{table}.{name} is {existing[name]}, expected {base}; left as it is")


def _duplicates(conn: sa.Connection, table: str, column: str) -> tuple[list[tuple[str, int]], int]:
    rows = conn.execute(
        sa.text(
            f'SELECT "{column}", count(*) AS n, count(*) OVER () AS total FROM "{table}" '
            f'WHERE "{column}" IS NOT NULL GROUP BY "{column}" HAVING count(*) > 1 '
            f'ORDER BY n DESC, "{column}" LIMIT 20'
        )
    ).all()
    return [(r[0], r[1]) for r in rows], (rows[0][2] if rows else 0)


def _bookkeeping_tables() -> dict[str, list[str]]:
    from ghl_pipeline.warehouse import ratelimit, sync_state

    return {
        "ghl_sync_state": [sync_state.DDL],
        "ghl_rate_limit": [ratelimit.DDL[0]],
        "ghl_request_log": ratelimit.DDL[1:],
    }


# Fillfactors this pipeline itself set in earlier versions (or none at all: Postgres' 100). Any other
# value was chosen by someone on purpose and is left alone.
_OWN_FILLFACTORS = {None, "90"}


def _set_fillfactor(conn: sa.Connection, notes: list[str]) -> list[str]:
    """Give ``all_calls`` the pipeline's fillfactor unless someone chose another; a catalog change
    only (pages already written keep their layout until rewritten), no row is touched."""
    current = conn.execute(
        sa.text(
            "SELECT (SELECT option_value FROM pg_options_to_table(c.reloptions) "
            "        WHERE option_name = 'fillfactor') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'all_calls' AND n.nspname = current_schema() AND c.relkind = 'r'"
        )
    ).first()
    if current is None:  # not a plain table (e.g. a view or partitioned table): nothing to set
        return []
    value = current[0]
    if value == str(ALL_CALLS_FILLFACTOR):
        return []
    if value not in _OWN_FILLFACTORS:
        notes.append(f"all_calls has fillfactor {value}, chosen by someone else; left as it is")
        return []
    conn.execute(sa.text(f"ALTER TABLE all_calls SET (fillfactor = {ALL_CALLS_FILLFACTOR})"))  # a constant
    return [f"all_calls fillfactor {value or 100} -> {ALL_CALLS_FILLFACTOR}"]


def upgrade(engine: sa.Engine) -> UpgradeReport:
    """Create missing tables, add missing columns and indexes; idempotent; all or nothing.

    Raises :class:`DuplicateCallsError` (listing them) when existing rows share a ``ghl_id``.
    """
    created: list[str] = []
    added: list[str] = []
    indexes: list[str] = []
    dropped: list[str] = []
    notes: list[str] = []
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK_KEY})
        for table, create_sql, wanted in (
            ("projects", _CREATE_PROJECTS, PROJECTS_COLUMNS),
            ("all_calls", _CREATE_ALL_CALLS, ALL_CALLS_COLUMNS),
            ("all_calls_rejects", _CREATE_REJECTS, ()),
            ("ghl_contacts", _CREATE_CONTACTS, ()),
        ):
            if not _columns(conn, table):
                conn.execute(sa.text(create_sql))
                created.append(table)
            elif wanted:
                _upgrade_table(conn, table, wanted, added, notes)

        if not _has_unique_index(conn, "projects", ["project_name"]):
            dups, total = _duplicates(conn, "projects", "project_name")
            if dups:
                names = ", ".join(f"{name!r} x{n}" for name, n in dups)
                raise SchemaUpgradeError(
                    f"projects has {total} project_name value(s) on more than one row ({names}); "
                    "nothing was changed"
                )
            conn.execute(sa.text("CREATE UNIQUE INDEX projects_project_name_key ON projects (project_name)"))
            indexes.append("projects_project_name_key")

        if not _has_unique_index(conn, "all_calls", ["ghl_id"]):
            dups, total = _duplicates(conn, "all_calls", "ghl_id")
            if dups:
                raise DuplicateCallsError(dups, total)  # the transaction rolls back: nothing changed
            conn.execute(sa.text("CREATE UNIQUE INDEX all_calls_ghl_id_key ON all_calls (ghl_id)"))
            indexes.append("all_calls_ghl_id_key")
            if conn.execute(sa.text("SELECT 1 FROM all_calls WHERE ghl_id IS NULL LIMIT 1")).first():
                notes.append("all_calls has rows without ghl_id; they are kept but can never be upserted")

        for name, ddl in _INDEXES.items():
            if not _index_exists(conn, name):
                conn.execute(sa.text(ddl))
                indexes.append(name)
        storage = _set_fillfactor(conn, notes)
        for name, reason in _RETIRED_INDEXES.items():
            if _index_exists(conn, name):
                conn.execute(sa.text(f'DROP INDEX "{name}"'))  # a constant name, never input
                dropped.append(name)
                notes.append(f"dropped index {name}: {reason}")

        # The pipeline's own bookkeeping: last sync per project, the shared GHL rate budget.
        for table, statements in _bookkeeping_tables().items():
            if not _columns(conn, table):
                created.append(table)
            for statement in statements:
                conn.execute(sa.text(statement))
    return UpgradeReport(
        created_tables=tuple(created),
        added_columns=tuple(added),
        created_indexes=tuple(indexes),
        notes=tuple(notes),
        dropped_indexes=tuple(dropped),
        storage_changes=tuple(storage),
    )
