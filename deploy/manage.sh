#!/bin/sh
# manage.py as the workers see it: the env file loaded, in the app's
# directory. Run it as the service user:
#   sudo -u care-connect /srv/care-connect/deploy/manage.sh createsuperuser
set -eu
ENV_FILE="${CARE_CONNECT_ENV:-/etc/care-connect/care-connect.env}"
APP_DIR="$(cd "$(dirname "$0")/.." && pwd)"
cd "$APP_DIR"
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
exec .venv/bin/python manage.py "$@"
