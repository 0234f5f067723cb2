"""Copies in S3-compatible storage, against a local moto server (never the internet)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pokervod_db import backup
from pokervod_db.backup import storage
from pokervod_db.errors import BackupError
from pokervod_db.settings import Settings

pytestmark = pytest.mark.slow


def test_backup_is_copied_and_fetched_back_with_its_checksum_checked(
    db_settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="pokervod-backups")
    settings = db_settings.model_copy(
        update={
            "backup_dir": tmp_path / "local",
            "backup_s3_bucket": "pokervod-backups",
            "backup_s3_endpoint_url": s3_endpoint,
            "backup_s3_prefix": "nightly",
        }
    )
    made = backup.create_backup(settings)
    assert made.s3_key == f"nightly/{made.file.name}"
    assert storage.list_remote(settings) == [made.manifest_file.name]

    elsewhere = settings.model_copy(update={"backup_dir": tmp_path / "other-host"})
    fetched = storage.download(elsewhere, made.file.name)
    assert fetched.read_bytes() == made.file.read_bytes()
    assert backup.verify_backup(elsewhere, fetched).ok

    # A copy altered in the bucket is refused and not kept.
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.put_object(Bucket="pokervod-backups", Key=made.s3_key, Body=b"\x28\xb5\x2f\xfd" + b"x" * 100)
    third = settings.model_copy(update={"backup_dir": tmp_path / "third"})
    with pytest.raises(BackupError, match="does not match its manifest's sha256"):
        storage.download(third, made.file.name)
    assert list((tmp_path / "third").iterdir()) == []
