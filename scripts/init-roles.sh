#!/bin/sh
# Run once by the postgres image when it creates a new data volume (docker-entrypoint-initdb.d),
# as POSTGRES_USER, the owner who runs the migrations. It creates the two NOLOGIN group roles
# and the application's login from the environment (no password is written anywhere):
#   APP_DB_USER (default pokervod_api) with APP_DB_PASSWORD, a member of pokervod_app;
#   READONLY_DB_USER (default pokervod_reader) with READONLY_DB_PASSWORD, only when that is set.
# The grants on the schema come from `pokervod-db roles setup`, which the `migrate` service runs
# after each upgrade (tables created later are covered by its default privileges).
set -eu

: "${APP_DB_PASSWORD:?set APP_DB_PASSWORD}"
app_user="${APP_DB_USER:-pokervod_api}"
reader_user="${READONLY_DB_USER:-pokervod_reader}"
reader_password="${READONLY_DB_PASSWORD:-}"

# psql variables are quoted by psql itself (:'var'), so a password cannot inject SQL; nothing
# is echoed (no -a / -e).
psql -v ON_ERROR_STOP=1 -X -q \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v app_user="$app_user" -v app_password="$APP_DB_PASSWORD" \
    -v reader_user="$reader_user" -v reader_password="$reader_password" <<'EOSQL'
SELECT format('CREATE ROLE %I NOLOGIN', r)
FROM unnest(ARRAY['pokervod_app', 'pokervod_readonly']) AS r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE pokervod_app', :'app_user', :'app_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user')
\gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE pokervod_readonly',
              :'reader_user', :'reader_password')
WHERE :'reader_password' <> '' AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'reader_user')
\gexec
EOSQL
