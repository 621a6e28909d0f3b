"""A contact cache that outlives runs, so a re-sync does not re-fetch every contact from GHL."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import timedelta

import sqlalchemy as sa

from ghl_pipeline.ghl.models import Contact


def cached_contacts(
    engine: sa.Engine, location_id: str, ids: Collection[str], *, max_age: timedelta
) -> dict[str, Contact]:
    """The cached contacts among ``ids`` fetched less than ``max_age`` ago, by contact id."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT contact_id, name, phone, country, ghl_updated_at FROM ghl_contacts "
                "WHERE location_id = :loc AND contact_id = ANY(:ids) "
                "AND fetched_at > now() - make_interval(secs => :age)"
            ),
            {"loc": location_id, "ids": wanted, "age": max_age.total_seconds()},
        ).all()
    return {
        cid: Contact(id=cid, name=name, phone=phone, country=country, date_updated=updated)
        for cid, name, phone, country, updated in rows
    }


def store_contacts(engine: sa.Engine, location_id: str, contacts: Iterable[Contact]) -> None:
    """Insert or refresh contacts in the cache (``fetched_at`` = now), in one statement.

    One row per statement (``executemany``) cost a round trip per contact, paid by every project of
    a run; the arrays below send them all at once.
    """
    latest = {c.id: c for c in contacts}  # one row per contact: ON CONFLICT cannot touch a row twice
    if not latest:
        return
    rows = [latest[cid] for cid in sorted(latest)]  # a consistent lock order when two runs store them
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ghl_contacts (location_id, contact_id, name, phone, country, ghl_updated_at, "
                "fetched_at) SELECT :loc, u.cid, u.name, u.phone, u.country, u.updated, now() "
                "FROM unnest(CAST(:cids AS text[]), CAST(:names AS text[]), CAST(:phones AS text[]), "
                "CAST(:countries AS text[]), CAST(:updated AS timestamptz[])) "
                "AS u(cid, name, phone, country, updated) "
                "ON CONFLICT (location_id, contact_id) DO UPDATE SET name = EXCLUDED.name, "
                "phone = EXCLUDED.phone, country = EXCLUDED.country, "
                "ghl_updated_at = EXCLUDED.ghl_updated_at, fetched_at = EXCLUDED.fetched_at"
            ),
            {
                "loc": location_id,
                "cids": [c.id for c in rows],
                "names": [c.name for c in rows],
                "phones": [c.phone for c in rows],
                "countries": [c.country for c in rows],
                "updated": [c.date_updated for c in rows],
            },
        )
