#!/usr/bin/env bash
# Nightly backup for cron (PRD 7.1): a verified-ready archive in BACKUP_DIR, then retention.
#
#   0 3 * * * cd /srv/pokervod && scripts/backup.sh >> /var/log/pokervod-backup.log 2>&1
#
# Settings come from the environment or .env (DATABASE_URL, BACKUP_DIR, BACKUP_S3_BUCKET, ...).
# Extra arguments go to `pokervod-db backup` (e.g. --format directory --jobs 4).
# KEEP_DAILY / KEEP_WEEKLY (default 7 / 4) set the retention; VERIFY=1 also verifies the new
# archive by restoring it into a scratch database. Exits non-zero on the first failure.
set -euo pipefail

POKERVOD_DB="${POKERVOD_DB:-pokervod-db}"

result="$("$POKERVOD_DB" backup --json "$@")"
echo "$result"
if [[ "${VERIFY:-0}" == "1" ]]; then
    file="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["file"])' <<<"$result")"
    "$POKERVOD_DB" backup verify --json "$file"
fi
"$POKERVOD_DB" backup prune --json --keep-daily "${KEEP_DAILY:-7}" --keep-weekly "${KEEP_WEEKLY:-4}"
