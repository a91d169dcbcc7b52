-- Migration 002: example_add_query_cache
-- A cache of query results with expiry. Written in the old runner's format: it opens and commits
-- its own transaction and records itself (kgmigrate absorbs both).
-- squawk-ignore-file prefer-text-field, prefer-bigint-over-int -- applied history: these tables exist with these types on every database; changing a type is a migration of its own
-- squawk-ignore-file require-statement-timeout -- creates an empty table: nothing runs long, and kgmigrate bounds lock waits

BEGIN;

CREATE TABLE IF NOT EXISTS kg_api.query_cache (
    query_hash VARCHAR(64) PRIMARY KEY,
    query_text TEXT NOT NULL,
    result JSONB NOT NULL,
    hit_count INTEGER DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_accessed_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_query_cache_expires ON kg_api.query_cache (expires_at);
CREATE INDEX IF NOT EXISTS idx_query_cache_last_accessed ON kg_api.query_cache (last_accessed_at DESC);

INSERT INTO public.schema_migrations (version, name)
VALUES (2, 'example_add_query_cache')
ON CONFLICT (version) DO NOTHING;

COMMIT;
