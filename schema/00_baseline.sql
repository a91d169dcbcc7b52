-- Baseline schema: initialises a fresh database.
-- kgmigrate applies this file only to a database with neither public.schema_migrations nor the
-- kg_api schema, then applies schema/migrations/*.sql above version 1.
-- Needs no extension beyond a stock PostgreSQL.
-- squawk-ignore-file prefer-text-field, prefer-bigint-over-int, prefer-identity, prefer-timestamp-tz -- the schema every database already has; changing a type is a migration of its own
-- squawk-ignore-file require-statement-timeout -- runs only on an empty database: nothing to wait for or rewrite

BEGIN;

CREATE SCHEMA IF NOT EXISTS kg_api;
CREATE SCHEMA IF NOT EXISTS kg_auth;
CREATE SCHEMA IF NOT EXISTS kg_logs;

CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT NOW()
);

-- Users and API keys -------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS kg_auth.users (
    id SERIAL PRIMARY KEY,
    username VARCHAR(100) NOT NULL UNIQUE,
    email VARCHAR(255) UNIQUE,
    password_hash TEXT,
    role VARCHAR(20) NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user', 'readonly')),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_login_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS kg_auth.api_keys (
    id SERIAL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES kg_auth.users(id) ON DELETE CASCADE,
    key_prefix VARCHAR(16) NOT NULL,
    key_hash VARCHAR(128) NOT NULL UNIQUE,
    name VARCHAR(100),
    scopes TEXT[] NOT NULL DEFAULT ARRAY['read']::TEXT[],
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_api_keys_user ON kg_auth.api_keys (user_id);

-- API state ----------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS kg_api.ingestion_jobs (
    job_id VARCHAR(64) PRIMARY KEY,
    ontology VARCHAR(200) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    progress JSONB NOT NULL DEFAULT '{}'::JSONB,
    result JSONB,
    error TEXT,
    created_by INTEGER REFERENCES kg_auth.users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_ingestion_jobs_status ON kg_api.ingestion_jobs (status, created_at);

CREATE TABLE IF NOT EXISTS kg_api.sessions (
    session_id VARCHAR(64) PRIMARY KEY,
    user_id INTEGER REFERENCES kg_auth.users(id) ON DELETE CASCADE,
    data JSONB NOT NULL DEFAULT '{}'::JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_sessions_expires ON kg_api.sessions (expires_at);

-- Audit log ----------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS kg_logs.audit_trail (
    id BIGSERIAL PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    actor VARCHAR(100),
    action VARCHAR(100) NOT NULL,
    target TEXT,
    details JSONB
);
CREATE INDEX IF NOT EXISTS idx_audit_trail_time ON kg_logs.audit_trail (occurred_at DESC);

INSERT INTO public.schema_migrations (version, name) VALUES (1, 'baseline')
ON CONFLICT (version) DO NOTHING;

COMMIT;
