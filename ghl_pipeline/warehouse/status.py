"""What ``ghl-pipeline status`` shows: per project, what ``all_calls`` holds and how fresh it is."""

from __future__ import annotations

import sqlalchemy as sa

_STATUS_SQL = sa.text(
    """
    SELECT p.project_name,
           p.active,
           coalesce(c.calls, 0) AS calls,
           c.latest_call,
           c.last_synced,
           coalesce(r.rejects_24h, 0) AS rejects_24h
      FROM projects p
      LEFT JOIN (SELECT project_name, count(*) AS calls, max(call_started_at) AS latest_call,
                        max(synced_at) AS last_synced
                   FROM all_calls GROUP BY project_name) c USING (project_name)
      LEFT JOIN (SELECT project_name, count(*) AS rejects_24h
                   FROM all_calls_rejects WHERE rejected_at > now() - interval '24 hours'
                  GROUP BY project_name) r USING (project_name)
     ORDER BY p.project_name
    """
)


def project_status(engine: sa.Engine) -> list[dict]:
    """One dict per project: calls stored, latest call, last write, rejects in the last 24 hours."""
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(_STATUS_SQL)]
