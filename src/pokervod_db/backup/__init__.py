"""Backup, restore, verification and retention of schema ``pokervod``.

Plain functions whose first argument is the settings; the CLI and the agent call them.
See the README section "Backup and restore" for the design.
"""

from pokervod_db.backup.archive import ArchiveKind, Manifest, Verification
from pokervod_db.backup.create import BackupResult, create_backup
from pokervod_db.backup.progress import Progress, ProgressFn
from pokervod_db.backup.restore import RestoreResult, check_archive, restore_backup
from pokervod_db.backup.retention import (
    BackupInfo,
    PruneResult,
    list_backups,
    newest_verified,
    newest_verified_age_s,
    prune_backups,
)
from pokervod_db.backup.verify import VerifyResult, verify_backup

__all__ = [
    "ArchiveKind",
    "BackupInfo",
    "BackupResult",
    "Manifest",
    "Progress",
    "ProgressFn",
    "PruneResult",
    "RestoreResult",
    "Verification",
    "VerifyResult",
    "check_archive",
    "create_backup",
    "list_backups",
    "newest_verified",
    "newest_verified_age_s",
    "prune_backups",
    "restore_backup",
    "verify_backup",
]
