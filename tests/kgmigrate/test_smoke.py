"""The project's own schema applies to a fresh database and lands at version 3."""

import json


def test_repo_schema_reaches_version_3(kgmigrate, repo_schema, db):
    result = kgmigrate("up", "-y", migrations_dir=repo_schema)
    assert result.exit_code == 0, result.output
    assert "Schema version: 003" in result.output
    status = json.loads(kgmigrate("status", "--json", migrations_dir=repo_schema).stdout)
    assert status["current_version"] == 3
    assert [a["version"] for a in status["applied"]] == [1, 2, 3]
    assert status["pending"] == [] and status["drifted"] == []
    row = db.execute("SELECT provider, model_name, embedding_dimensions, active "
                     "FROM kg_api.embedding_config").fetchall()
    assert row == [("openai", "text-embedding-3-small", 1536, True)]
