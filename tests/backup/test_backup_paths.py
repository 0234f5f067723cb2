"""Paths that cannot escape BACKUP_DIR, a directory only we can write, clear failures on a full
disk or without boto3, and fetches that never leave partial files or delete what was there."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from pokervod_db import backup
from pokervod_db.backup import storage
from pokervod_db.backup.archive import TEMP_PREFIX, remove_stale_temporaries
from pokervod_db.errors import BackupError, ConfigurationError
from pokervod_db.settings import Settings

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "pokervod-db")


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "precious"
    (victim / "sub").mkdir(parents=True)
    (victim / "a.txt").write_text("keep me")
    (victim / "sub" / "b.txt").write_text("keep me too")
    return victim


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_stale_temporary_symlink_is_unlinked_without_touching_its_target(tmp_path: Path) -> None:
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir(mode=0o700)
    victim = _victim(tmp_path)
    link = backup_dir / f"{TEMP_PREFIX}999999_x"
    link.symlink_to(victim, target_is_directory=True)
    file_link = backup_dir / f"{TEMP_PREFIX}999999_y.dump"
    file_link.symlink_to(victim / "a.txt")
    removed = remove_stale_temporaries(backup_dir)
    assert sorted(p.name for p in removed) == sorted([link.name, file_link.name])
    assert not os.path.lexists(link) and not os.path.lexists(file_link)
    assert _tree(victim) == ["a.txt", "sub", "sub/b.txt"]
    assert (victim / "a.txt").read_text() == "keep me"


def test_stale_temporary_directory_holding_a_link_deletes_only_the_link(tmp_path: Path) -> None:
    backup_dir = tmp_path / "backups"
    stale = backup_dir / f"{TEMP_PREFIX}999999_pokervod_backup_x.dumpdir"
    stale.mkdir(parents=True)
    backup_dir.chmod(0o700)
    victim = _victim(tmp_path)
    (stale / "toc.dat").write_bytes(b"PGDMP")
    (stale / "escape").symlink_to(victim, target_is_directory=True)
    remove_stale_temporaries(backup_dir)
    assert not stale.exists()
    assert _tree(victim) == ["a.txt", "sub", "sub/b.txt"]


def test_backup_with_a_planted_link_in_backup_dir_keeps_the_linked_directory(
    db_settings: Settings, tmp_path: Path
) -> None:
    settings = db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})
    settings.backup_dir.mkdir(mode=0o700)
    victim = _victim(tmp_path)
    (settings.backup_dir / f"{TEMP_PREFIX}999999_x").symlink_to(victim)
    made = backup.create_backup(settings)
    assert made.file.exists()
    assert _tree(victim) == ["a.txt", "sub", "sub/b.txt"]


def test_group_writable_backup_dir_is_refused_before_anything_is_written(
    db_settings: Settings, tmp_path: Path
) -> None:
    backup_dir = tmp_path / "shared"
    backup_dir.mkdir()
    backup_dir.chmod(0o770)
    settings = db_settings.model_copy(update={"backup_dir": backup_dir})
    with pytest.raises(BackupError, match=r"writable by its group or by everyone .*chmod go-w"):
        backup.create_backup(settings)
    assert list(backup_dir.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_backup_dir_owned_by_another_user_is_refused(db_settings: Settings, tmp_path: Path) -> None:
    backup_dir = tmp_path / "foreign"
    backup_dir.mkdir(mode=0o700)
    os.chown(backup_dir, 65534, 65534)
    settings = db_settings.model_copy(update={"backup_dir": backup_dir})
    with pytest.raises(BackupError, match="belongs to uid 65534, not to this user"):
        backup.create_backup(settings)
    assert list(backup_dir.iterdir()) == []


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("limit", [512, 4096])
def test_full_disk_gives_one_failed_line_and_leaves_no_file(
    cli_env: dict[str, str], tmp_path: Path, limit: int
) -> None:
    """RLIMIT_FSIZE makes every write past ``limit`` bytes fail with EFBIG, as a full disk does."""
    backup_dir = Path(cli_env["BACKUP_DIR"])
    run = subprocess.run(
        [CLI, "backup"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: _limit_file_size(limit),
    )
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAILED: "), run.stderr
    assert "Traceback" not in run.stderr
    assert [p.name for p in backup_dir.iterdir()] == [] if backup_dir.exists() else True


def test_missing_boto3_fails_in_one_line_before_any_archive_is_written(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "no-boto3"
    for name in ("boto3", "botocore"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('no {name} here')\n")
    env = {**cli_env, "PYTHONPATH": str(blocker), "BACKUP_S3_BUCKET": "some-bucket"}
    run = subprocess.run([CLI, "backup"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "FAILED: BACKUP_S3_BUCKET is set but boto3 is not installed; install pokervod-db[s3]"
    ]
    backup_dir = Path(cli_env["BACKUP_DIR"])
    assert not backup_dir.exists() or list(backup_dir.iterdir()) == []


# --- fetches from the bucket (a local moto server) -------------------------------------------


@pytest.fixture
def bucket_settings(db_settings: Settings, s3_endpoint: str, tmp_path: Path) -> Settings:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="pokervod-paths")
    return db_settings.model_copy(
        update={
            "backup_dir": tmp_path / "local",
            "backup_s3_bucket": "pokervod-paths",
            "backup_s3_endpoint_url": s3_endpoint,
            "backup_s3_prefix": "p/",
        }
    )


def test_fetch_of_a_directory_archive_with_dotdot_keys_writes_nothing_outside(
    bucket_settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    made = backup.create_backup(bucket_settings, fmt="directory")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.put_object(
        Bucket="pokervod-paths", Key=f"p/{made.file.name}/../../../escaped.txt", Body=b"pwned"
    )
    target = tmp_path / "elsewhere" / "backups"
    target.mkdir(parents=True, mode=0o700)
    other = bucket_settings.model_copy(update={"backup_dir": target})
    with pytest.raises(BackupError, match="outside the backup directory"):
        storage.download(other, made.file.name)
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.rglob("escaped.txt")) == []


def test_fetch_of_a_traversing_name_is_refused(bucket_settings: Settings) -> None:
    with pytest.raises(BackupError, match="not a backup file name"):
        storage.download(bucket_settings, "../../etc/passwd")


def test_failed_fetch_leaves_no_partial_file_and_keeps_what_was_there(
    bucket_settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    made = backup.create_backup(bucket_settings)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.delete_object(
        Bucket="pokervod-paths", Key=f"p/{made.file.name}"
    )  # the manifest is there, not the archive
    target = tmp_path / "host2"
    target.mkdir(mode=0o700)
    other = bucket_settings.model_copy(update={"backup_dir": target})
    with pytest.raises(BackupError, match="S3 download of"):
        storage.download(other, made.file.name)
    assert list(target.iterdir()) == []
    # A manifest of the same name already there is kept, byte for byte.
    (target / made.manifest_file.name).write_text("mine")
    with pytest.raises(BackupError, match="already exists"):
        storage.download(other, made.file.name)
    assert [p.name for p in target.iterdir()] == [made.manifest_file.name]
    assert (target / made.manifest_file.name).read_text() == "mine"


def test_missing_boto3_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ConfigurationError, match="boto3 is not installed"):
        storage.require_boto3()
