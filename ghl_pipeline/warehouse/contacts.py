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
    """Insert or refresh contacts in the cache (``fetched_at`` = now)."""
    rows = [
        {
            "loc": location_id,
            "cid": c.id,
            "name": c.name,
            "phone": c.phone,
            "country": c.country,
            "updated": c.date_updated,
        }
        for c in contacts
    ]
    if not rows:
        return
    rows.sort(key=lambda r: r["cid"])  # a consistent lock order when two runs store the same contacts
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ghl_contacts (location_id, contact_id, name, phone, country, ghl_updated_at, "
                "fetched_at) VALUES (:loc, :cid, :name, :phone, :country, :updated, now()) "
                "ON CONFLICT (location_id, contact_id) DO UPDATE SET name = EXCLUDED.name, "
                "phone = EXCLUDED.phone, country = EXCLUDED.country, "
                "ghl_updated_at = EXCLUDED.ghl_updated_at, fetched_at = EXCLUDED.fetched_at"
            ),
            rows,
        )
