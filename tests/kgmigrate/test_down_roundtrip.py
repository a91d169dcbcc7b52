"""The project's own migrations reverse: `down --to N` leaves the schema `up --target N` builds on
a fresh database, and a following `up` builds the whole schema again."""

from __future__ import annotations

import json

import pytest

from tests.support.kgm import latest_version, schema_dump, tracked


@pytest.mark.slow
def test_down_to_each_version_matches_a_fresh_up_to_it(kgmigrate, repo_schema, db_url, db,
                                                        pg_cluster):
    from tests.support.pg import create_database, drop_database

    latest = latest_version()
    assert kgmigrate("up", "-y", migrations_dir=repo_schema).exit_code == 0
    full = schema_dump(db_url)
    status = json.loads(kgmigrate("status", "--json", migrations_dir=repo_schema).stdout)
    assert {a["version"]: a["reversible"] for a in status["applied"]} == {
        1: False, **{v: True for v in range(2, latest + 1)}}

    for to in range(latest - 1, 0, -1):
        result = kgmigrate("down", "--to", str(to), "-y", migrations_dir=repo_schema)
        assert result.exit_code == 0, result.output
        assert f"Reversed: 1 migration(s). Schema version: {to:03d}" in result.output
        assert tracked(db) == list(range(1, to + 1))
        fresh = create_database(pg_cluster)
        try:
            assert kgmigrate("up", "-y", "--target", str(to), url=fresh,
                             migrations_dir=repo_schema).exit_code == 0
            assert schema_dump(db_url) == schema_dump(fresh), f"down --to {to}"
        finally:
            drop_database(pg_cluster, fresh)

    # The baseline is not reversible: --to 0 leaves it, and nothing is left to do.
    result = kgmigrate("down", "--to", "0", "-y", migrations_dir=repo_schema)
    assert result.exit_code == 0, result.output
    assert "Nothing to reverse. Current schema version: 001" in result.output

    result = kgmigrate("up", "-y", migrations_dir=repo_schema)
    assert result.exit_code == 0, result.output
    assert tracked(db) == list(range(1, latest + 1))
    assert schema_dump(db_url) == full


def test_down_to_1_then_up_round_trips_in_one_go(kgmigrate, repo_schema, db_url, db):
    assert kgmigrate("up", "-y", migrations_dir=repo_schema).exit_code == 0
    db.execute("UPDATE kg_api.embedding_config SET backend = 'onnx', precision = 'int8'")
    before = schema_dump(db_url)
    result = kgmigrate("down", "--to", "1", "-y", migrations_dir=repo_schema)
    assert result.exit_code == 0, result.output
    latest = latest_version()
    assert f"Reversed: {latest - 1} migration(s). Schema version: 001" in result.output
    # Newest first.
    order = [line.split()[2] for line in result.output.splitlines() if "Reversed 0" in line]
    assert order == [f"{v:03d}" for v in range(latest, 1, -1)]
    assert kgmigrate("up", "-y", migrations_dir=repo_schema).exit_code == 0
    assert schema_dump(db_url) == before
