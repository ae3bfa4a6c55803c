#!/bin/sh
# One pg_dump of a database in pg_dump's custom format (pg_restore reads it),
# then dumps of it older than KEEP_DAYS removed. Run as the postgres user
# (peer authentication) or with PGHOST/PGUSER set.
#   backup.sh DATABASE DIRECTORY [KEEP_DAYS]      e.g. care_connect /var/backups/care-connect 14
set -eu
DB="${1:?usage: backup.sh DATABASE DIRECTORY [KEEP_DAYS]}"
DIR="${2:?usage: backup.sh DATABASE DIRECTORY [KEEP_DAYS]}"
KEEP_DAYS="${3:-14}"
umask 077
OUT="$DIR/$DB-$(date -u +%Y%m%dT%H%M%SZ).dump"
# Written under a temporary name: a dump cut short never looks complete.
pg_dump --format=custom --file="$OUT.partial" "$DB"
mv "$OUT.partial" "$OUT"
find "$DIR" -maxdepth 1 -name "$DB-*.dump" -mtime +"$KEEP_DAYS" -delete
echo "backup: $OUT"
