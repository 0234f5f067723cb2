#!/usr/bin/env bash
# Restore a backup (PRD 7.2), atomically: the database keeps its old data unless the whole
# archive loaded and matched its manifest. A safety backup of the current data is taken first.
#
#   scripts/restore.sh backups/pokervod_backup_20251211_030000.dump.zst
#
# Settings come from the environment or .env. Without a terminal, it needs --yes
# (scripts/restore.sh FILE --yes); other options: --no-safety-backup, --json.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 BACKUP_FILE [--yes] [--no-safety-backup] [--json]" >&2
    exit 2
fi
exec "${POKERVOD_DB:-pokervod-db}" restore "$@"
