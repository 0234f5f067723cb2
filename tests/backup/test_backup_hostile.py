"""Hostile archives: whatever an archive holds, restore and verify run none of its code.

Each case plants code or foreign objects, makes an archive of it, and asserts the restore and the
verify refuse it with one line while none of the planted code ran: no role created, no file
written by ``COPY … TO PROGRAM``, no database setting changed, no object left behind.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pokervod_db import backup
from pokervod_db.backup.archive import ArchiveKind, archive_sha256, archive_size, read_manifest
from pokervod_db.backup.checks import TocInfo, _parse_entry, data_only_problem
from pokervod_db.backup.load import _DataReader
from pokervod_db.backup.tools import find_tools
from pokervod_db.errors import BackupError
from pokervod_db.settings import SCHEMA, Settings
from tests.backup.support import all_rows, change_data, connect, fill, schemas

pytestmark = pytest.mark.slow


@pytest.fixture
async def filled(db_settings: Settings, session, tmp_path: Path) -> Settings:
    await fill(session)
    return db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})


class Harm:
    """What planted code would leave behind if it ever ran."""

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:10]
        self.role = f"pwned_{token}"
        # /tmp: the server may run as another OS user than the tests (embedded, as root).
        self.marker = Path(f"/tmp/pokervod_pwned_{token}")

    def evil_body(self) -> str:
        """PL/pgSQL doing what an attacker wants, disarmed by a setting while it is planted."""
        return f"""
        BEGIN
          IF current_setting('pokervod_test.disarm', true) = 'on' THEN RETURN true; END IF;
          EXECUTE 'CREATE ROLE {self.role} SUPERUSER LOGIN';
          EXECUTE format('ALTER DATABASE %I SET work_mem = %L', current_database(), '7MB');
          EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {self.marker}''';
          RETURN true;
        END"""

    def assert_nothing_ran(self, settings: Settings) -> None:
        with connect(settings, autocommit=True) as conn:
            role = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (self.role,)
            ).fetchone()
            if role is not None:  # never leave a superuser behind, even when the test fails
                conn.execute(f'DROP ROLE "{self.role}"')
            settings_rows = conn.execute(
                "SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d "
                "ON d.oid = s.setdatabase WHERE d.datname = current_database()"
            ).fetchall()
        assert role is None, "planted code created a role"
        assert settings_rows == [], f"planted code changed database settings: {settings_rows}"
        assert not self.marker.exists(), "planted code wrote a file through COPY TO PROGRAM"

    def cleanup(self) -> None:
        self.marker.unlink(missing_ok=True)


@pytest.fixture
def harm() -> Iterator[Harm]:
    h = Harm()
    yield h
    h.cleanup()


def _forge_manifest(archive: Path, template: Path) -> None:
    """Give ``archive`` a manifest copied from a real one with its size and sha256 (as an
    attacker who can write the backup directory would)."""
    manifest = read_manifest(template)
    manifest.archive = archive.name
    manifest.kind = ArchiveKind.CUSTOM
    manifest.size_bytes = archive_size(archive)
    manifest.sha256 = archive_sha256(archive)
    (archive.parent / f"{archive.name}.manifest.json").write_text(manifest.to_json())


def _pg_dump(settings: Settings, out: Path, *args: str) -> None:
    tools = find_tools(settings)
    subprocess.run(
        [
            tools.path("pg_dump"),
            "--format",
            "custom",
            "--file",
            str(out),
            *args,
            "--dbname",
            settings.libpq_url(),
        ],
        check=True,
        capture_output=True,
    )


def _objects(settings: Settings) -> list[str]:
    """Functions, triggers and event triggers and publications in the database."""
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN "
            "('pg_catalog', 'information_schema') "
            "UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal "
            "UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger "
            "UNION ALL SELECT 'publication ' || pubname FROM pg_publication ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _assert_refused(settings: Settings, archive: Path, match: str, harm: Harm) -> None:
    rows, objects, names = all_rows(settings), _objects(settings), schemas(settings)
    files = sorted(p.name for p in settings.backup_dir.iterdir())
    with pytest.raises(BackupError, match=match):
        backup.restore_backup(settings, archive=archive)
    with pytest.raises(BackupError, match=match):
        backup.verify_backup(settings, archive, record=False)
    harm.assert_nothing_ran(settings)
    assert all_rows(settings) == rows
    assert _objects(settings) == objects
    assert schemas(settings) == names
    assert sorted(p.name for p in settings.backup_dir.iterdir()) == files, "a file was written"


def test_planted_check_function_trigger_and_security_definer_are_refused_and_never_run(
    filled: Settings, harm: Harm
) -> None:
    with connect(filled, autocommit=True) as conn:
        conn.execute("SET pokervod_test.disarm = 'on'")
        conn.execute(
            f"CREATE FUNCTION {SCHEMA}.evil() RETURNS boolean LANGUAGE plpgsql VOLATILE "
            f"AS $$ {harm.evil_body()} $$"
        )
        conn.execute(
            f"ALTER TABLE {SCHEMA}.projects ADD CONSTRAINT ck_evil CHECK ({SCHEMA}.evil())"
        )
        conn.execute("CREATE TABLE public.stolen (code text)")
        conn.execute(
            f"CREATE FUNCTION {SCHEMA}.copy_out() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO public.stolen VALUES (NEW.code); "
            f"PERFORM {SCHEMA}.evil(); RETURN NEW; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER trg_copy_out AFTER INSERT ON {SCHEMA}.projects "
            f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.copy_out()"
        )
        conn.execute(
            f"CREATE FUNCTION {SCHEMA}.backdoor() RETURNS boolean LANGUAGE plpgsql "
            f"SECURITY DEFINER AS $$ {harm.evil_body()} $$"
        )
    made = backup.create_backup(filled)
    with connect(filled, autocommit=True) as conn:  # the live schema is clean again
        conn.execute(f"ALTER TABLE {SCHEMA}.projects DROP CONSTRAINT ck_evil")
        conn.execute(f"DROP TRIGGER trg_copy_out ON {SCHEMA}.projects")
        conn.execute(f"DROP FUNCTION {SCHEMA}.evil(), {SCHEMA}.copy_out(), {SCHEMA}.backdoor()")
    change_data(filled)
    _assert_refused(
        filled, made.file, r"holds FUNCTION pokervod (evil|copy_out|backdoor)\(\)", harm
    )


@pytest.mark.parametrize("name", ["pokervod evil", "pokervod.evil"])
def test_schema_whose_name_only_starts_like_ours_is_refused(
    filled: Settings, harm: Harm, name: str
) -> None:
    made = backup.create_backup(filled)
    quoted = '"' + name + '"'
    with connect(filled, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {quoted}")
        conn.execute(f"CREATE TABLE {quoted}.projects (id int)")
    forged = filled.backup_dir / "forged.dump"
    _pg_dump(filled, forged, "--schema", SCHEMA, "--schema", quoted)
    _forge_manifest(forged, made.file)
    with connect(filled, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {quoted} CASCADE")
    _assert_refused(filled, forged, "refused|outside schema", harm)


def test_full_dump_with_event_trigger_publication_and_database_settings_is_refused(
    filled: Settings, harm: Harm
) -> None:
    made = backup.create_backup(filled)
    with connect(filled, autocommit=True) as conn:
        conn.execute("SET pokervod_test.disarm = 'on'")
        conn.execute(
            "CREATE FUNCTION public.on_ddl() RETURNS event_trigger LANGUAGE plpgsql "
            "AS $$ BEGIN PERFORM public.evil(); END $$"
        )
        conn.execute(
            "CREATE FUNCTION public.evil() RETURNS boolean LANGUAGE plpgsql "
            f"AS $$ {harm.evil_body()} $$"
        )
        conn.execute("CREATE EVENT TRIGGER pwn ON ddl_command_end EXECUTE FUNCTION public.on_ddl()")
        conn.execute(f"CREATE PUBLICATION pwn_pub FOR TABLE {SCHEMA}.projects")
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        conn.execute(f"ALTER DATABASE \"{database[0]}\" SET work_mem = '9MB'")
    forged = filled.backup_dir / "full.dump"
    _pg_dump(filled, forged, "--create")
    _forge_manifest(forged, made.file)
    with connect(filled, autocommit=True) as conn:
        conn.execute("DROP EVENT TRIGGER pwn")
        conn.execute("DROP PUBLICATION pwn_pub")
        conn.execute("DROP FUNCTION public.on_ddl(), public.evil()")
        conn.execute(f'ALTER DATABASE "{database[0]}" RESET ALL')
    _assert_refused(filled, forged, "refused|outside schema", harm)


def test_data_stream_with_sql_after_the_end_marker_is_refused_and_not_run(
    filled: Settings, harm: Harm
) -> None:
    """pg_restore's output is read, not run: SQL smuggled after ``\\.`` never executes."""
    script = (
        "--\n-- PostgreSQL database dump\n--\n\\restrict abc123\nSET client_encoding = 'UTF8';\n"
        f"COPY {SCHEMA}.tags (name, name_display, category) FROM stdin;\n"
        "x\tX\temotion\n\\.\n"
        f"CREATE ROLE {harm.role} SUPERUSER LOGIN;\n"
    ).encode()
    with connect(filled) as conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {SCHEMA}.tags CASCADE")  # as in a restore: COPY FREEZE needs it
        reader = _DataReader(cur, revision=None, on_copy=lambda: None)
        with pytest.raises(BackupError, match="not table data"):
            for i in range(0, len(script), 7):  # small chunks: markers split across reads
                reader.feed(script[i : i + 7])
        conn.rollback()
    harm.assert_nothing_ran(filled)


def test_data_stream_into_an_unknown_table_is_refused(filled: Settings) -> None:
    script = b"COPY pokervod.evil (a) FROM stdin;\n1\n\\.\n"
    with connect(filled) as conn, conn.cursor() as cur:
        reader = _DataReader(cur, revision=None, on_copy=lambda: None)
        with pytest.raises(BackupError, match="unknown table 'evil'"):
            reader.feed(script)
        conn.rollback()


def test_rows_that_look_like_end_markers_round_trip_exactly(filled: Settings) -> None:
    with connect(filled, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {SCHEMA}.tags (name, name_display, category) VALUES "
            "('\\.', E'\\\\.\\n\\\\.', 'emotion'), (E'a\\n\\\\.\\nCREATE ROLE x;', 'b', 'emotion')"
        )
    made = backup.create_backup(filled)
    rows = all_rows(filled)
    change_data(filled)
    backup.restore_backup(filled, archive=made.file, safety_backup=False)
    assert all_rows(filled) == rows


def test_restored_schema_has_no_drift_from_our_migrations(filled: Settings) -> None:
    """The schema a restore leaves is the one our migrations build, object for object."""
    from pokervod_db import migrate

    made = backup.create_backup(filled)
    before = _objects(filled)
    backup.restore_backup(filled, archive=made.file, safety_backup=False)
    assert migrate.drift(filled) == []
    assert _objects(filled) == before


def test_load_runs_as_the_schema_owner_not_as_the_superuser(filled: Settings, pg_server) -> None:
    """Least rights: the new schema and its tables belong to the old schema's owner."""
    if os.environ.get("POKERVOD_TEST_DATABASE_URL"):
        pytest.skip("creates a role: only on the embedded test server, never on a shared one")
    role = f"pokervod_owner_{uuid.uuid4().hex[:8]}"
    with connect(filled, autocommit=True) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        database = row[0]
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
        conn.execute(f'GRANT CREATE ON DATABASE "{database}" TO "{role}"')
        conn.execute(f'ALTER SCHEMA {SCHEMA} OWNER TO "{role}"')
    try:
        made = backup.create_backup(filled)
        backup.restore_backup(filled, archive=made.file, safety_backup=False)
        with connect(filled) as conn:
            owners = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                "UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
                (SCHEMA, SCHEMA),
            ).fetchall()
        assert {r[0] for r in owners} == {role}
    finally:
        with connect(filled, autocommit=True) as conn:
            conn.execute(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER')
            conn.execute(f'DROP OWNED BY "{role}"')
        pg_server.drop_database(database)
        with pg_server.admin() as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


GOOD_TOC = [
    "5; 2615 16390 SCHEMA - pokervod postgres",
    "220; 1255 16400 FUNCTION pokervod set_updated_at() postgres",
    "230; 1259 16410 TABLE pokervod projects postgres",
    "231; 1259 16411 SEQUENCE pokervod agent_events_id_seq postgres",
    "240; 0 16410 TABLE DATA pokervod projects postgres",
    "241; 0 0 SEQUENCE SET pokervod agent_events_id_seq postgres",
    "250; 2606 16420 CONSTRAINT pokervod projects pk_projects postgres",
    "251; 1259 16421 INDEX pokervod ix_projects_code postgres",
    "252; 2606 16422 FK CONSTRAINT pokervod seasons fk_seasons_project_id_projects postgres",
    "253; 2620 16423 TRIGGER pokervod projects trg_projects_updated_at postgres",
]


def _toc(*extra: str) -> TocInfo:
    info = TocInfo()
    for line in [*GOOD_TOC, *extra]:
        entry = _parse_entry(line)
        assert entry is not None, line
        info.entries.append(entry)
    return info


def test_toc_of_a_normal_backup_passes_the_data_only_check() -> None:
    toc = _toc()
    assert data_only_problem(toc) is None
    assert toc.has_schema
    assert [e.dump_id for e in toc.data_entries()] == [240, 241]


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("300; 3466 17000 EVENT TRIGGER - pwn postgres", "EVENT TRIGGER - pwn"),
        ("301; 6104 17001 PUBLICATION - pwn_pub postgres", "PUBLICATION - pwn_pub"),
        (
            "302; 6106 17002 PUBLICATION TABLE pokervod pwn_pub projects postgres",
            "PUBLICATION TABLE",
        ),
        ("303; 0 0 DATABASE PROPERTIES - pokervod postgres", "DATABASE PROPERTIES - pokervod"),
        ("304; 1262 16384 DATABASE - pokervod postgres", "DATABASE - pokervod"),
        ("305; 0 0 ACL - DATABASE pokervod postgres", "ACL - DATABASE pokervod"),
        ("306; 1255 17003 FUNCTION pokervod evil() postgres", "FUNCTION pokervod evil()"),
        ("307; 2620 17004 TRIGGER pokervod projects trg_copy_out postgres", "TRIGGER pokervod"),
        ("308; 2618 17005 RULE pokervod projects r postgres", "RULE pokervod projects r"),
        ("309; 3256 17006 POLICY pokervod projects p postgres", "POLICY pokervod projects p"),
        ("310; 2615 17007 SCHEMA - pokervod evil postgres", "SCHEMA - pokervod evil"),
        ("311; 1259 17008 TABLE pokervod evil projects postgres", "TABLE pokervod evil projects"),
        ("312; 0 17008 TABLE DATA pokervod evil projects postgres", "TABLE DATA pokervod evil"),
        ("313; 0 17009 TABLE DATA pokervod.evil projects postgres", "TABLE DATA pokervod.evil"),
        ("314; 0 17010 TABLE DATA pokervod stolen postgres", "TABLE DATA pokervod stolen"),
        ("315; 3079 17011 EXTENSION - dblink", "EXTENSION - dblink"),
        ("316; 1255 17012 PROCEDURE pokervod p() postgres", "PROCEDURE pokervod p()"),
        ("317; 0 0 SOMETHING NEW pokervod x postgres", "SOMETHING"),
    ],
)
def test_toc_entries_beyond_data_and_our_objects_are_refused_naming_them(
    line: str, named: str
) -> None:
    problem = data_only_problem(_toc(line))
    assert problem is not None and problem.startswith(named), problem


def test_rows_that_break_our_constraints_roll_the_whole_restore_back(filled: Settings) -> None:
    """The archive's rows meet our migrations' constraints, not the archive's (here: none)."""
    with connect(filled, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {SCHEMA}.tags DROP CONSTRAINT ck_tags_category_valid")
        conn.execute(
            f"INSERT INTO {SCHEMA}.tags (name, name_display, category) "
            "VALUES ('bad', 'Bad', 'not-a-category')"
        )
    made = backup.create_backup(filled)
    with connect(filled, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {SCHEMA}.tags WHERE name = 'bad'")
    rows = all_rows(filled)
    with pytest.raises(BackupError, match=r"rolled back: .*ck_tags_category_valid"):
        backup.restore_backup(filled, archive=made.file, safety_backup=False)
    assert all_rows(filled) == rows
    assert schemas(filled) == ["pokervod"]
