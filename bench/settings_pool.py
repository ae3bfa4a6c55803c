"""project.settings with psycopg 3's connection pool instead of persistent connections."""

from project.settings import *  # noqa: F403
from project.settings import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": 2,
    "max_size": 8,
    "timeout": 10,
}
