#!/bin/sh
# Runs once, when the compose demo's PostgreSQL initialises an empty data directory (after
# the demo schema and migrations/*.sql, which sort before it in /docker-entrypoint-initdb.d).
#
# migrations/001_readonly_role.sql creates pgward_reader without a password, on purpose (a
# password in a SQL file ends up in version control). This sets it from the environment. The
# value travels as a psql variable, quoted by psql (:'name'), never pasted into the SQL text.
set -e   # no -u: the image sources this file when it is not executable

if [ -z "${PGWARD_DB_PASSWORD:-}" ]; then
    echo "initdb-role-passwords.sh: PGWARD_DB_PASSWORD is not set" >&2
    exit 1
fi

psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=reader_password="$PGWARD_DB_PASSWORD" <<'SQL'
ALTER ROLE pgward_reader PASSWORD :'reader_password';
SQL
