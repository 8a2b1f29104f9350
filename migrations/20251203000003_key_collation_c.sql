-- ts_measure's text key columns compare bytes (collation "C").
--
-- Why: every inserted row descends the unique index (tenant_id, device_id,
-- point_id, ts) and the (device_id, ts) index, comparing text at each step.
-- Under the database's default collation (often C.UTF-8 or en_US.UTF-8,
-- which PostgreSQL 15 does not treat as "C") each comparison goes through
-- the locale machinery: measured here, 8-9 % of the database's CPU while
-- ingesting, and 5-10 % more rows/s with "C" (BENCHMARKS.md). Equality is
-- unchanged (ids are compared for identity, never sorted for people); only
-- ORDER BY on these columns becomes byte order.
--
-- The row-level security policy reads tenant_id, so PostgreSQL refuses to
-- change the column's type while it exists: it is dropped and recreated,
-- unchanged, in this migration's transaction, so no write ever sees the
-- table without it. Changing the collation rebuilds the indexes that use
-- these columns.

DROP POLICY tenant_isolation ON ts_measure;

ALTER TABLE ts_measure
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN device_id TYPE text COLLATE "C",
    ALTER COLUMN point_id  TYPE text COLLATE "C";

CREATE POLICY tenant_isolation ON ts_measure
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
