-- Reverses migration 004: add_embedding_backend
-- Configurations that use int8 cannot exist without the column that says which backend runs
-- them: they fall back to float32 (the backend choice itself is lost with the column), then the
-- CHECKs return to 003's.
-- squawk-ignore-file ban-drop-column -- backend only exists since 004; reversing 004 removes it by definition
-- squawk-ignore-file ban-drop-constraint, constraint-missing-not-valid -- 003's precision CHECK comes back in place of 004's wider one; a config table of a few rows validates in microseconds
-- squawk-ignore-file require-statement-timeout -- a config table of a few rows, and kgmigrate bounds lock waits

UPDATE kg_api.embedding_config SET precision = 'float32' WHERE precision = 'int8';
ALTER TABLE kg_api.embedding_config DROP CONSTRAINT IF EXISTS embedding_config_int8_backend_check;
ALTER TABLE kg_api.embedding_config DROP CONSTRAINT IF EXISTS embedding_config_precision_check;
ALTER TABLE kg_api.embedding_config ADD CONSTRAINT embedding_config_precision_check
    CHECK (precision IN ('float16', 'float32'));
ALTER TABLE kg_api.embedding_config DROP CONSTRAINT IF EXISTS embedding_config_backend_check;
ALTER TABLE kg_api.embedding_config DROP COLUMN IF EXISTS backend;
