"""Failures are located compiler-style (PATH:LINE), roll their file back and stop the run."""

from __future__ import annotations

from tests.support.kgm import table_exists, tracked, user_relations


def _five_files(migrations, broken_fifth: str) -> None:
    for v in range(1, 5):
        migrations.add(f"00{v}_t{v}.sql", f"CREATE TABLE kgt_{v} (x INTEGER);\n")
    migrations.add("005_t5.sql", broken_fifth)


def test_syntax_error_in_fifth_file_stops_before_anything_runs(kgmigrate, migrations, db):
    _five_files(migrations, "CREATE TABLE kgt_5 (x INTEGER);\n\nCREATE TABEL kgt_6 (y INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{migrations.path / '005_t5.sql'}:3: syntax error: syntax error at or near" \
        in result.output
    assert "CREATE TABEL kgt_6 (y INTEGER);" in result.output  # the offending source line
    assert "Traceback" not in result.output
    assert user_relations(db) == []  # not even the tracking table


def test_runtime_error_without_position_points_at_the_statement(kgmigrate, migrations, db):
    migrations.add("001_ok.sql", "CREATE TABLE kgt_ok (x INTEGER);\n")
    bad = migrations.add("002_div.sql", "-- statement three divides by zero\n"
                                        "CREATE TABLE kgt_div (x INTEGER);\n"
                                        "INSERT INTO kgt_div VALUES (1);\n"
                                        "\n"
                                        "INSERT INTO kgt_div\n"
                                        "    SELECT x / 0 FROM kgt_div;\n"
                                        "CREATE TABLE kgt_after (x INTEGER);\n")
    migrations.add("003_never.sql", "CREATE TABLE kgt_never (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    out = result.output
    assert f"{bad}:5: ERROR: division by zero" in out
    assert "SQLSTATE: 22012" in out
    assert "5 | INSERT INTO kgt_div" in out
    assert "Migration 002 (div) was rolled back" in out
    # 001 stays applied, 002 left nothing behind, 003 never ran.
    assert tracked(db) == [1]
    assert table_exists(db, "kgt_ok")
    assert not table_exists(db, "kgt_div") and not table_exists(db, "kgt_after")
    assert not table_exists(db, "kgt_never")


def test_runtime_error_with_position_points_at_the_offending_token(kgmigrate, migrations, db):
    bad = migrations.add("001_col.sql", "CREATE TABLE kgt_c (x INTEGER);\n"
                                        "SELECT\n"
                                        "    x,\n"
                                        "    no_such_column\n"
                                        "FROM kgt_c;\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:4: ERROR: column \"no_such_column\" does not exist" in result.output
    assert "SQLSTATE: 42703" in result.output
    assert "4 |     no_such_column" in result.output
    assert not table_exists(db, "kgt_c")


def test_detail_and_hint_are_shown(kgmigrate, migrations, db):
    migrations.add("001_dup.sql", "CREATE TABLE kgt_d (x INTEGER PRIMARY KEY);\n"
                                  "INSERT INTO kgt_d VALUES (1), (1);\n")
    migrations.add("002_fn.sql", "SELECT kgt_no_such_function(1);\n")
    result = kgmigrate("up", "-y")
    assert "001_dup.sql:2: ERROR: duplicate key value violates unique constraint" in result.output
    assert "SQLSTATE: 23505" in result.output
    assert "DETAIL: Key (x)=(1) already exists." in result.output
    migrations.path.joinpath("001_dup.sql").write_text("CREATE TABLE kgt_d (x INTEGER);\n")
    result = kgmigrate("up", "-y")
    assert "002_fn.sql:1: ERROR: function kgt_no_such_function(integer) does not exist" \
        in result.output
    assert "HINT: No function matches" in result.output
    assert tracked(db) == [1]


def test_deferred_constraint_failing_at_commit_is_reported_and_rolled_back(kgmigrate, migrations,
                                                                          db):
    bad = migrations.add("001_deferred.sql", """\
CREATE TABLE kgt_parent (id INTEGER PRIMARY KEY);
CREATE TABLE kgt_child (parent INTEGER REFERENCES kgt_parent DEFERRABLE INITIALLY DEFERRED);
INSERT INTO kgt_child VALUES (42);
""")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"{bad}:" in result.output and "SQLSTATE: 23503" in result.output
    assert "Traceback" not in result.output
    assert not table_exists(db, "kgt_parent")
    assert tracked(db) == []


def test_failed_run_can_be_fixed_and_resumed(kgmigrate, migrations, db):
    migrations.add("001_a.sql", "CREATE TABLE kgt_a (x INTEGER);\n")
    bad = migrations.add("002_b.sql", "CREATE TABLE kgt_b (x INTEGER);\nSELECT 1 / 0;\n")
    assert kgmigrate("up", "-y").exit_code == 1
    bad.write_text("CREATE TABLE kgt_b (x INTEGER);\nSELECT 1 / 1;\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 0, result.output
    assert "Pending: 1 migration(s)" in result.output
    assert tracked(db) == [1, 2]


def test_statement_needing_no_transaction_gets_a_hint(kgmigrate, migrations, db):
    migrations.add("001_t.sql", "CREATE TABLE kgt_t (x INTEGER);\n")
    migrations.add("002_idx.sql", "CREATE INDEX CONCURRENTLY kgt_t_x ON kgt_t (x);\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert "002_idx.sql:1: ERROR: CREATE INDEX CONCURRENTLY cannot run inside a transaction block" \
        in result.output
    assert "SQLSTATE: 25001" in result.output
    assert "-- kgmigrate: no-transaction" in result.output
    assert tracked(db) == [1]


def test_lost_connection_says_the_outcome_is_unknown(kgmigrate, migrations, db):
    path = migrations.add("001_dies.sql", "CREATE TABLE kgt_dies (x INTEGER);\n"
                                          "SELECT pg_terminate_backend(pg_backend_pid());\n")
    result = kgmigrate("up", "-y")
    assert result.exit_code == 1
    assert f"lost the connection while applying {path}" in result.output
    assert "kgmigrate status" in result.output
    assert "Traceback" not in result.output and "error ignored" not in result.output
    assert tracked(db) == [] and not table_exists(db, "kgt_dies")


def test_position_after_multibyte_text_lands_on_the_token(kgmigrate, migrations, db):
    bad = migrations.add("001_utf8.sql", "-- ünïcødé ✓\n"
                                         "CREATE TABLE kgt_u (x TEXT);\n"
                                         "INSERT INTO kgt_u VALUES ('ééé ✓');\n"
                                         "SELECT 'ü', x,\n"
                                         "       nope FROM kgt_u;\n")
    result = kgmigrate("up", "-y")
    assert f"{bad}:5: ERROR: column \"nope\" does not exist" in result.output
    lines = result.output.splitlines()
    src = next(i for i, ln in enumerate(lines) if ln.endswith("|        nope FROM kgt_u;"))
    assert lines[src + 1].index("^") == lines[src].index("nope")
