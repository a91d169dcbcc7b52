-- Reverses migration 002: example_add_query_cache
-- The cache holds only results that can be computed again: dropping it loses nothing that
-- matters. Its indexes go with the table.
-- squawk-ignore-file ban-drop-table -- a cache of recomputable query results; nothing refers to it
-- squawk-ignore-file require-statement-timeout -- drops one table: nothing runs long, and kgmigrate bounds lock waits

DROP TABLE IF EXISTS kg_api.query_cache;
