"""Optional copies of backups in S3-compatible storage (boto3, only when a bucket is set).

The archive is uploaded first and its manifest last, so a manifest in the bucket means a complete
upload. A download is checked against the manifest's size and sha256 before it is kept; a copy
that does not match is deleted and reported. Credentials come from the usual AWS variables or
profile; ``BACKUP_S3_ENDPOINT_URL`` points at a non-AWS server (MinIO, Ceph, …).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from pokervod_db.backup.archive import (
    MANIFEST_SUFFIX,
    TEMP_PREFIX,
    ArchiveKind,
    archive_files,
    archive_sha256,
    ensure_backup_dir,
    fsync_dir,
    manifest_path,
    read_manifest,
    remove_archive,
)
from pokervod_db.errors import BackupError, ConfigurationError
from pokervod_db.settings import Settings


def configured(settings: Settings) -> bool:
    return bool(settings.backup_s3_bucket and settings.backup_s3_bucket.strip())


def require_boto3() -> None:
    """Fail in one line when a bucket is configured but boto3 is not installed."""
    try:
        import boto3  # noqa: F401
        import botocore.exceptions  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "BACKUP_S3_BUCKET is set but boto3 is not installed; install pokervod-db[s3]"
        ) from exc


def _client(settings: Settings) -> Any:
    require_boto3()
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.backup_s3_endpoint_url or None,
        region_name=settings.backup_s3_region or None,
    )


def _key(settings: Settings, name: str) -> str:
    prefix = settings.backup_s3_prefix
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix + name


def _fail(action: str, exc: Exception) -> BackupError:
    text = str(exc).strip().splitlines()
    return BackupError(f"S3 {action} failed: {text[0] if text else type(exc).__name__}")


def upload(settings: Settings, archive: Path) -> str:
    """Copy an archive and its manifest to the bucket; returns the archive's key."""
    client = _client(settings)
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = settings.backup_s3_bucket
    manifest = manifest_path(archive)
    try:
        for path in archive_files(archive):
            relative = path.relative_to(archive.parent).as_posix()
            client.upload_file(str(path), bucket, _key(settings, relative))
        client.upload_file(str(manifest), bucket, _key(settings, manifest.name))
    except (BotoCoreError, ClientError, OSError) as exc:
        raise _fail(f"upload of {archive.name} to bucket {bucket}", exc) from exc
    return _key(settings, archive.name)


def list_remote(settings: Settings) -> list[str]:
    """Names of the manifests in the bucket (complete uploads), newest first."""
    client = _client(settings)
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = _key(settings, "")
    names: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=settings.backup_s3_bucket, Prefix=prefix
        ):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if "/" not in name and name.endswith(MANIFEST_SUFFIX):
                    names.append(name)
    except (BotoCoreError, ClientError) as exc:
        raise _fail("listing", exc) from exc
    return sorted(names, reverse=True)


def _relative_key(key: str, prefix: str) -> PurePosixPath:
    """The part of a bucket key below ``prefix`` as a path that cannot leave its directory."""
    relative = PurePosixPath(key[len(prefix) :])
    if (
        not key.startswith(prefix)
        or not relative.parts
        or relative.is_absolute()
        or any(part in ("", ".", "..") for part in relative.parts)
        or "\\" in key
    ):
        raise BackupError(
            f"bucket key {key!r} would be written outside the backup directory; nothing was fetched"
        )
    return relative


def download(settings: Settings, name: str, *, backup_dir: Path | None = None) -> Path:
    """Fetch an archive (by file name) and its manifest; keep them only if the sha256 matches.

    Everything is downloaded under a temporary name inside ``BACKUP_DIR`` and moved into place
    only when complete and checked: a failed fetch leaves no partial file and never touches
    files that were there. Keys that would leave the directory (``../``) are refused.
    """
    if not name or name != Path(name).name or name in (".", "..") or "\\" in name:
        raise BackupError(f"{name!r} is not a backup file name; use a name from `backup list`")
    client = _client(settings)
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = settings.backup_s3_bucket
    target_dir = ensure_backup_dir(backup_dir or settings.backup_dir)
    archive = target_dir / name
    manifest = manifest_path(archive)
    for existing in (archive, manifest):
        if os.path.lexists(existing):
            raise BackupError(f"{existing} already exists; delete it first to fetch it again")
    staging = target_dir / f"{TEMP_PREFIX}{os.getpid()}_fetch_{name}"
    staging.mkdir(mode=0o700)
    try:
        tmp_archive = staging / archive.name
        tmp_manifest = staging / manifest.name
        try:
            client.download_file(bucket, _key(settings, manifest.name), str(tmp_manifest))
            expected = read_manifest(tmp_archive)
            if expected.kind is ArchiveKind.DIRECTORY:
                prefix = _key(settings, archive.name + "/")
                keys: list[str] = []
                for page in client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix
                ):
                    keys += [obj["Key"] for obj in page.get("Contents", [])]
                relatives = [(key, _relative_key(key, prefix)) for key in keys]  # all checked first
                tmp_archive.mkdir(mode=0o700)
                for key, relative in relatives:
                    dest = tmp_archive.joinpath(*relative.parts)
                    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    client.download_file(bucket, key, str(dest))
            else:
                client.download_file(bucket, _key(settings, archive.name), str(tmp_archive))
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _fail(f"download of {name} from bucket {bucket}", exc) from exc
        digest = archive_sha256(tmp_archive)
        if digest != expected.sha256:
            raise BackupError(
                f"the copy of {name} in bucket {bucket} does not match its manifest's sha256; "
                "it was not kept"
            )
        for path in [*archive_files(tmp_archive), tmp_manifest]:
            path.chmod(0o600)
        # The manifest first, the archive last: a file with a final name has its manifest.
        os.rename(tmp_manifest, manifest)
        os.rename(tmp_archive, archive)
        fsync_dir(target_dir)
    finally:
        remove_archive(staging)
    return archive
