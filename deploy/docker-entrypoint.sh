#!/bin/sh
# The container's entry point (Dockerfile). With no arguments: migrate once,
# then the workers, WORKERS Daphnes on PORT, PORT+1, ... (deploy.cluster:
# on SIGTERM every socket is closed with 1001; if one worker dies the
# container stops, and compose starts it again). With arguments: that
# manage.py command, e.g.
#   docker compose run --rm app createsuperuser
#   docker compose exec app deploy/docker-entrypoint.sh housekeeping
set -eu
cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python manage.py "$@"
fi
.venv/bin/python manage.py migrate --noinput
exec .venv/bin/python -m deploy.cluster --no-setup --host 0.0.0.0 \
    --workers "${WORKERS:-2}" --port "${PORT:-8067}"
