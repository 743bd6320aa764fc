"""The privileges of the three roles a deployment gives Soniq (``soniq setup --grant-*``).

- **producer**: may enqueue (single, bulk, in its own transaction, with dedup keys) through
  the SECURITY DEFINER functions of migrations 0010 and 0011, and nothing else: no table privileges.
- **worker**: reads and writes the schema's tables, truncates drained partitions of the
  live ring, and calls the schema's functions (history partitions are made and dropped by
  SECURITY DEFINER functions, so no DDL right is needed); nothing outside the schema.
- **viewer**: reads the schema's tables and the ``jobs`` view. The viewer without args
  gets every column except those carrying job data (:data:`DATA_COLUMNS`).

Roles are created by the DBA; these statements only grant. They are idempotent and apply
to the tables that exist when they run (the catalog is read when they run, not when they
are written), so run them again after an upgrade adds tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from soniq.errors import ConfigurationError

RoleKind = Literal["producer", "worker", "viewer", "viewer-without-args"]

# Columns that hold what producers and handlers put into a job.
DATA_COLUMNS = ("args", "result", "error_detail")

# Role names go into SQL text (also inside DO blocks), so only plain names are accepted.
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_role_name(role: str) -> str:
    """Return ``role`` if it is a plain role name (letters, digits, ``_``)."""
    if not _ROLE_NAME.fullmatch(role):
        raise ConfigurationError(
            f"invalid role name {role!r}: use letters, digits and '_' (at most 63, not "
            "starting with a digit)"
        )
    return role


def grant_statements(schema: str, grants: Iterable[tuple[RoleKind, str]]) -> list[str]:
    """The statements giving each ``(kind, role)`` of ``grants`` the privileges of ``kind``
    on ``schema`` (a checked identifier)."""
    return [statement for kind, role in grants for statement in _grant(schema, kind, role)]


def _grant(schema: str, kind: RoleKind, role: str) -> list[str]:
    role = '"' + check_role_name(role) + '"'
    usage = f"GRANT USAGE ON SCHEMA {schema} TO {role}"
    if kind == "producer":
        return [
            usage,
            f"GRANT EXECUTE ON FUNCTION {schema}.enqueue(text, json, text, integer, "
            f"timestamptz, interval, text, integer, integer, text, json, integer) TO {role}",
            f"GRANT EXECUTE ON FUNCTION {schema}.enqueue_job(text, json, text, integer, "
            f"timestamptz, interval, text, integer, integer, text, json, integer) TO {role}",
            f"GRANT EXECUTE ON FUNCTION {schema}.enqueue_many(text, json[], text, integer, "
            f"timestamptz, interval, integer, integer, text, json, integer) TO {role}",
            # with after= (migration 0014)
            f"GRANT EXECUTE ON FUNCTION {schema}.enqueue_job_after(text, json, bigint[], text, "
            f"integer, timestamptz, interval, text, integer, integer, text, json, integer) "
            f"TO {role}",
            f"GRANT EXECUTE ON FUNCTION {schema}.enqueue_many_after(text, json[], bigint[], "
            f"text, integer, timestamptz, interval, integer, integer, text, json, integer) "
            f"TO {role}",
        ]
    if kind == "worker":
        return [
            usage,
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"REVOKE INSERT, UPDATE, DELETE ON {schema}.schema_migrations FROM {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role}",
            # the recycler empties the ring's partitions
            f"""DO $$ DECLARE part text; BEGIN
                FOR part IN SELECT c.relname FROM pg_inherits AS i
                            JOIN pg_class AS c ON c.oid = i.inhrelid
                            WHERE i.inhparent = '{schema}.job_live'::regclass LOOP
                    EXECUTE format('GRANT TRUNCATE ON {schema}.%I TO {role}', part);
                END LOOP; END $$""",
        ]
    if kind == "viewer":
        return [usage, f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}"]
    data = ", ".join(f"'{column}'" for column in DATA_COLUMNS)
    return [
        usage,
        f"REVOKE SELECT ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        f"""DO $$ DECLARE t record; BEGIN
            FOR t IN SELECT c.relname, string_agg(quote_ident(a.attname), ', '
                                                  ORDER BY a.attnum) AS shown
                     FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid
                     WHERE c.relnamespace = '{schema}'::regnamespace
                       AND c.relkind IN ('r', 'p', 'v') AND a.attnum > 0
                       AND NOT a.attisdropped AND a.attname NOT IN ({data})
                     GROUP BY c.relname LOOP
                EXECUTE format('GRANT SELECT (%s) ON {schema}.%I TO {role}', t.shown, t.relname);
            END LOOP; END $$""",
    ]
