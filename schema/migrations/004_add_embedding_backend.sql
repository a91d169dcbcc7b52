-- Migration 004: add_embedding_backend
-- kgserve runs local models on torch (as before), ONNX Runtime or OpenVINO, the latter two also in
-- int8. Adds `backend` (existing rows read as 'torch', today's behaviour), lets `precision` be
-- 'int8', and keeps int8 off torch, which has no int8 path.
-- squawk-ignore-file constraint-missing-not-valid, require-statement-timeout -- a config table of a few rows: validating a CHECK scans them in microseconds, and kgmigrate bounds lock waits
-- squawk-ignore-file ban-drop-constraint -- each dropped CHECK is replaced in this file by a wider one (precision gains int8) or by itself (re-runnable)

ALTER TABLE kg_api.embedding_config
    ADD COLUMN IF NOT EXISTS backend TEXT NOT NULL DEFAULT 'torch';

ALTER TABLE kg_api.embedding_config
    DROP CONSTRAINT IF EXISTS embedding_config_backend_check;
ALTER TABLE kg_api.embedding_config
    ADD CONSTRAINT embedding_config_backend_check
    CHECK (backend IN ('torch', 'onnx', 'openvino'));

-- Migration 003 declared the precision CHECK inline, so PostgreSQL named it; drop whatever CHECK
-- constraints are on that column (by catalog, not by a guessed name) and declare the new one.
DO $$
DECLARE
    constraint_name TEXT;
BEGIN
    FOR constraint_name IN
        SELECT c.conname
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conrelid = 'kg_api.embedding_config'::regclass
          AND c.contype = 'c'
          AND a.attname = 'precision'
          AND array_length(c.conkey, 1) = 1
    LOOP
        EXECUTE format('ALTER TABLE kg_api.embedding_config DROP CONSTRAINT %I', constraint_name);
    END LOOP;
END
$$;

ALTER TABLE kg_api.embedding_config
    ADD CONSTRAINT embedding_config_precision_check
    CHECK (precision IN ('float16', 'float32', 'int8'));

ALTER TABLE kg_api.embedding_config
    DROP CONSTRAINT IF EXISTS embedding_config_int8_backend_check;
ALTER TABLE kg_api.embedding_config
    ADD CONSTRAINT embedding_config_int8_backend_check
    CHECK (precision <> 'int8' OR backend IN ('onnx', 'openvino'));
