-- Reverses migration 003: add_embedding_config
-- Drops the embedding configuration with its rows (its index and trigger go with the table):
-- kgserve then has no configuration until 003 runs again and seeds the default row. Rows an
-- operator stored are lost; `kgmigrate down` offers a snapshot first.
-- squawk-ignore-file ban-drop-table, ban-drop-function -- configuration rows only, and the trigger function only that table used, seeded again by 003; take the offered snapshot to keep them
-- squawk-ignore-file require-statement-timeout -- drops one small table and a function: nothing runs long, and kgmigrate bounds lock waits

DROP TABLE IF EXISTS kg_api.embedding_config;
DROP FUNCTION IF EXISTS kg_api.update_embedding_config_timestamp();
