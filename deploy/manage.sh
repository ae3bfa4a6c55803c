#!/bin/sh
# manage.py as the workers see it: the env file loaded, in the app's
# directory. Run it as the service user:
#   sudo -u care-connect /srv/care-connect/deploy/manage.sh createsuperuser
set -eu
. "$(dirname "$0")/env.sh"
exec .venv/bin/python manage.py "$@"
