"""project.settings with persistent connections but no per-request health check."""

from project.settings import *  # noqa: F403
from project.settings import DATABASES

DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
