#!/bin/sh
# One Daphne worker with the environment from the env file (supervisor has
# no EnvironmentFile=). Usage: run-worker.sh PORT | run-worker.sh migrate
set -eu
. "$(dirname "$0")/env.sh"
if [ "${1:-}" = "migrate" ]; then
    .venv/bin/python manage.py migrate --noinput
    exec .venv/bin/python manage.py collectstatic --noinput --verbosity 0
fi
PORT="${1:?usage: run-worker.sh PORT}"
exec .venv/bin/python -m project.serve -b 127.0.0.1 -p "$PORT" \
    --websocket_timeout "${WEBSOCKET_TIMEOUT_S:-86400}" --websocket_connect_timeout "${WEBSOCKET_CONNECT_TIMEOUT_S:-30}" \
    --application-close-timeout 10 \
    project.asgi:application
