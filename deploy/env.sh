# Sourced by manage.sh and run-worker.sh: the app's directory, with the env
# file's variables exported, as the workers see them.
ENV_FILE="${CARE_CONNECT_ENV:-/etc/care-connect/care-connect.env}"
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
