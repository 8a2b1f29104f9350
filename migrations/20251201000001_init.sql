-- TrakSense ingest schema (CONTRACT.md: Tables).
-- ts_measure is a TimescaleDB hypertable when the extension can be created,
-- a plain table otherwise; row-level security keys every table by
-- current_setting('app.tenant_id', true).

CREATE TABLE IF NOT EXISTS ts_measure (
    tenant_id   text             NOT NULL,
    site_id     text,
    device_id   text             NOT NULL,
    point_id    text             NOT NULL,
    ts          timestamptz      NOT NULL,
    v_num       double precision,
    v_bool      boolean,
    v_text      text,
    v_json      jsonb,
    unit        text,
    qual        smallint         NOT NULL DEFAULT 0,
    meta        jsonb,
    ingested_at timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT ts_measure_one_value CHECK (
        num_nonnulls(v_num, v_bool, v_text, v_json) = 1
    )
);
CREATE UNIQUE INDEX IF NOT EXISTS ts_measure_dedup
    ON ts_measure (tenant_id, device_id, point_id, ts);
CREATE INDEX IF NOT EXISTS ts_measure_tenant_ts ON ts_measure (tenant_id, ts DESC);
CREATE INDEX IF NOT EXISTS ts_measure_device_ts ON ts_measure (device_id, ts DESC);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
            EXECUTE $q$SELECT create_hypertable('ts_measure', 'ts',
                chunk_time_interval => interval '1 day', if_not_exists => true,
                migrate_data => true)$q$;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'timescaledb unavailable (%), ts_measure stays a plain table', SQLERRM;
        END;
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS cmd_ack (
    tenant_id  text        NOT NULL,
    device_id  text        NOT NULL,
    cmd_id     text        NOT NULL,
    ok         boolean     NOT NULL,
    ts_exec    timestamptz,
    err        text,
    payload    jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, device_id, cmd_id)
);

CREATE TABLE IF NOT EXISTS ingest_errors (
    id        bigserial   PRIMARY KEY,
    ts        timestamptz NOT NULL DEFAULT now(),
    tenant_id text,
    topic     text        NOT NULL,
    reason    text        NOT NULL,
    detail    text,
    payload   bytea       NOT NULL
);
CREATE INDEX IF NOT EXISTS ingest_errors_ts ON ingest_errors (ts);
CREATE INDEX IF NOT EXISTS ingest_errors_tenant_ts ON ingest_errors (tenant_id, ts DESC);

-- The writer role is cluster-wide while this migration runs per database, so
-- parallel test databases race to create it: serialize on an advisory lock
-- and tolerate losing the race anyway.
DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(7426128);
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ingest_writer') THEN
        CREATE ROLE ingest_writer NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
DO $$
BEGIN
    EXECUTE format('GRANT ingest_writer TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'could not grant ingest_writer to %: %', current_user, SQLERRM;
END
$$;

GRANT USAGE ON SCHEMA public TO ingest_writer;
GRANT SELECT, INSERT ON ts_measure TO ingest_writer;
GRANT SELECT, INSERT, UPDATE ON cmd_ack TO ingest_writer;
GRANT SELECT, INSERT ON ingest_errors TO ingest_writer;
GRANT USAGE ON SEQUENCE ingest_errors_id_seq TO ingest_writer;

ALTER TABLE ts_measure ENABLE ROW LEVEL SECURITY;
ALTER TABLE cmd_ack ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_errors ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON ts_measure
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY tenant_isolation ON cmd_ack
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
-- Dead letters of a topic that gave no tenant have tenant_id NULL; they are
-- written in a transaction whose app.tenant_id is empty.
CREATE POLICY tenant_isolation ON ingest_errors
    USING (tenant_id IS NOT DISTINCT FROM NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id IS NOT DISTINCT FROM NULLIF(current_setting('app.tenant_id', true), ''));
