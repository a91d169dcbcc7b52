"""The project's own schema applies to a fresh database and lands at its latest version."""

import json

from tests.support.kgm import latest_version


def test_repo_schema_reaches_the_latest_version(kgmigrate, repo_schema, db):
    latest = latest_version(repo_schema)
    assert latest >= 4
    result = kgmigrate("up", "-y", migrations_dir=repo_schema)
    assert result.exit_code == 0, result.output
    assert f"Schema version: {latest:03d}" in result.output
    status = json.loads(kgmigrate("status", "--json", migrations_dir=repo_schema).stdout)
    assert status["current_version"] == latest
    assert [a["version"] for a in status["applied"]] == list(range(1, latest + 1))
    assert status["pending"] == [] and status["drifted"] == []
    row = db.execute("SELECT provider, model_name, embedding_dimensions, backend, active "
                     "FROM kg_api.embedding_config").fetchall()
    assert row == [("openai", "text-embedding-3-small", 1536, "torch", True)]
