"""
Care Connect settings. Every value comes from the environment; README.md and
.env.example document each variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import dj_database_url
import phonenumbers
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse_lazy
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """The variable, or `default` when it is unset or empty (`NAME=` in an env file)."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# Off unless asked for: a forgotten DEBUG in production means DEBUG off, and
# then the key below must be a real one. `make run` and the tests turn it on.
DEBUG = env_bool("DEBUG", False)

# Every token and session is signed with this key. There is no default:
# `make run` makes a local one once (.secret-key, kept out of git). With DEBUG
# off a placeholder, a key published anywhere or a short one stops the start.
SECRET_KEY = env("SECRET_KEY")
KNOWN_KEYS = {"change_me", "changeme", "change-me", "secret", "dev-only-insecure-key-change-me"}
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. `make run` and `make test` set a local one; in "
        "production put a random key of 50 characters or more in the env file."
    )
if not DEBUG and (
    len(SECRET_KEY) < 50
    or SECRET_KEY.lower() in KNOWN_KEYS
    or "change" in SECRET_KEY.lower()
    or SECRET_KEY.startswith("django-insecure")
    or "not-a-secret" in SECRET_KEY
):
    raise ImproperlyConfigured(
        "SECRET_KEY is a placeholder or shorter than 50 characters, and DEBUG is off. "
        'Make one with: python -c "import secrets; print(secrets.token_urlsafe(64))"'
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],0.0.0.0")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    # Unfold without its own default site: project.common.admin's is `admin.site`.
    "unfold.apps.BasicAppConfig",
    "unfold.contrib.filters",
    "project.common.apps.CareAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "django_otp",
    # Staff's authenticator apps (TOTP), the second factor after a password.
    "django_otp.plugins.otp_totp",
    # Serves the API docs' Swagger UI from static files: no CDN, no inline JS.
    "ninja",
    "people",
    "dispatch",
    "console",
]

MIDDLEWARE = [
    # /healthz, before anything validates the Host header (project.health).
    "project.health.health_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite by default (embedded), PostgreSQL when DATABASE_URL says so.
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            # A health check is a `SELECT 1` before every database call from a
            # socket; without it a connection the server dropped fails one call
            # and is then replaced (docs/benchmarks.md).
            conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", False),
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Server-side parameters let psycopg prepare a statement after it has
        # run DB_PREPARE_THRESHOLD times on a connection: planning the ride
        # query (six joins) was most of its time (docs/benchmarks.md).
        # 0 turns preparing off (a pooler in transaction mode needs that).
        threshold = env_int("DB_PREPARE_THRESHOLD", 2)
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=threshold > 0,
            prepare_threshold=threshold if threshold > 0 else None,
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {
                # select_for_update() is a no-op on SQLite: IMMEDIATE
                # transactions take the write lock up front, so two claims on
                # one driver serialise instead of failing on lock upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000;"
                ),
            },
            "TEST": {"NAME": env("SQLITE_TEST_PATH") or None},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "people.User"

# Channel layer: in-memory by default, Redis when REDIS_URL says so.
REDIS_URL = env("REDIS_URL")
# pubsub (RedisPubSubChannelLayer), chosen by measurement
# (docs/benchmarks.md, Decisions).
CHANNEL_LAYER_BACKEND = env("CHANNEL_LAYER_BACKEND", "pubsub")
WEBSOCKET_TIMEOUT_S = env_int("WEBSOCKET_TIMEOUT_S", 86400)
# Redis pub/sub ignores the database number: two deployments (or a cluster
# and the tests) on one Redis would hear each other's group messages. Each
# gets its own prefix, by default named after its database.
CHANNEL_PREFIX = env("CHANNEL_PREFIX") or (
    "cc-" + re.sub(r"[^A-Za-z0-9_.-]", "", Path(str(DATABASES["default"]["NAME"])).stem)
)
if REDIS_URL:
    _layer_backend = {
        "core": "channels_redis.core.RedisChannelLayer",
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    }[CHANNEL_LAYER_BACKEND]
    _layer_config: dict = {"hosts": [REDIS_URL], "prefix": CHANNEL_PREFIX}
    if CHANNEL_LAYER_BACKEND == "core":
        _layer_config.update(
            # The default capacity of 100 is per channel and drops silently
            # past it; a console fed 2,000 moving drivers needs headroom.
            capacity=env_int("CHANNEL_CAPACITY", 5000),
            # Group membership must outlive the longest socket, or a long-lived
            # consumer silently stops receiving group messages.
            group_expiry=WEBSOCKET_TIMEOUT_S,
            expiry=60,
        )
    CHANNEL_LAYERS = {"default": {"BACKEND": _layer_backend, "CONFIG": _layer_config}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": env_int("CHANNEL_CAPACITY", 5000)},
        }
    }

# Cache: shared counters for rate limits (project.common.limits). Redis when
# REDIS_URL says so, so that every worker counts the same hits; local memory
# when embedded (one process). The prefix keeps two deployments, or tests,
# that share a Redis database apart.
CACHE_KEY_PREFIX = env("CACHE_KEY_PREFIX", "care-connect")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            # A Redis that hangs fails the request instead of holding it.
            "OPTIONS": {"socket_timeout": 5, "socket_connect_timeout": 5},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "care-connect",
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            # Culling at the default 300 entries would forget counts under
            # exactly the load the limits are for.
            "OPTIONS": {"MAX_ENTRIES": 200_000},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-za"
# The languages of notification texts (people.models.Language; catalogues in
# dispatch/locale).
LANGUAGES = [("en", "English"), ("af", "Afrikaans"), ("zu", "isiZulu")]
TIME_ZONE = env("TIME_ZONE", "Africa/Johannesburg")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# In production, collectstatic writes every file a second time under a name
# with its content's hash (console.6b306a2f43b7.css), and pages link those:
# nginx and WhiteNoise may then cache them for good, since a new release
# gives changed files new names. With DEBUG on (make run, the tests) names
# stay plain, so nothing needs collecting first.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:board"
LOGOUT_REDIRECT_URL = "console:login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)

# Map tiles; markers still draw when tiles cannot load.
MAP_TILE_URL = env("MAP_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
_tile_origin = "/".join(MAP_TILE_URL.split("/")[:3]) if "://" in MAP_TILE_URL else ""

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:", *([_tile_origin] if _tile_origin else [])],
    # 'self' covers this site's own ws: and wss: origins (CSP Level 3).
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# WebSocket origins: native apps send none and are accepted; browsers must
# come from this site (scheme, host and port) or one of these full origins
# (https://dispatch.example.org), as CSRF_TRUSTED_ORIGINS are too.
WS_ALLOWED_ORIGINS = env_list("WS_ALLOWED_ORIGINS")

# Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed
# (project.common.clients); empty: the peer is the client.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network (e.g. 127.0.0.1, "
            "10.0.0.0/8)."
        ) from _exc

# --- Sign-in -----------------------------------------------------------------
SMS_BACKEND = env("SMS_BACKEND", "console" if DEBUG else "smsportal-rest")
SMS_PORTAL_USERNAME = env("SMS_PORTAL_USERNAME")
SMS_PORTAL_PASSWORD = env("SMS_PORTAL_PASSWORD")
SMS_PORTAL_ENDPOINT = env("SMS_PORTAL_ENDPOINT", "https://api.smsportal.com/api5/http5.aspx")
SMS_PORTAL_REST_URL = env("SMS_PORTAL_REST_URL", "https://rest.smsportal.com/v1")
SMS_TIMEOUT_S = env_float("SMS_TIMEOUT_S", 10.0)
# SMS_BACKEND=file appends each text here as a JSON line (development, tests).
SMS_FILE_PATH = env("SMS_FILE_PATH")
PHONE_DEFAULT_REGION = env("PHONE_DEFAULT_REGION", "ZA")
# Regions whose mobile numbers may be texted (people.phones.textable_phone).
PHONE_ALLOWED_REGIONS = [r.upper() for r in env_list("PHONE_ALLOWED_REGIONS", "ZA")]
if not PHONE_ALLOWED_REGIONS or not set(PHONE_ALLOWED_REGIONS) <= phonenumbers.SUPPORTED_REGIONS:
    raise ImproperlyConfigured(
        "PHONE_ALLOWED_REGIONS is a comma-separated list of region codes such as ZA,NA, "
        f"not {env('PHONE_ALLOWED_REGIONS')!r}."
    )
OTP_VALID_MINUTES = env_int("OTP_VALID_MINUTES", 5)
# Wrong tries a code allows before it is dead (a new code must be sent).
OTP_MAX_ATTEMPTS = env_int("OTP_MAX_ATTEMPTS", 5)
OTP_RESEND_COOLDOWN_S = env_int("OTP_RESEND_COOLDOWN_S", 30)
OTP_MAX_PER_PHONE_HOUR = env_int("OTP_MAX_PER_PHONE_HOUR", 5)
OTP_MAX_PER_PHONE_DAY = env_int("OTP_MAX_PER_PHONE_DAY", 10)
OTP_MAX_PHONES_PER_CLIENT_HOUR = env_int("OTP_MAX_PHONES_PER_CLIENT_HOUR", 10)
# Every SMS, of every kind, from all workers together (people.sms): the
# ceiling on what an attack from many addresses can cost. 30 a minute is
# far above the sign-ins of a city's service and caps the worst day at
# 43,200 texts.
SMS_MAX_PER_MINUTE = env_int("SMS_MAX_PER_MINUTE", 30)
ACCESS_TOKEN_TTL_S = env_int("ACCESS_TOKEN_TTL_S", 15 * 60)
REFRESH_TOKEN_TTL_DAYS = env_int("REFRESH_TOKEN_TTL_DAYS", 30)
REGISTRATION_TOKEN_TTL_S = env_int("REGISTRATION_TOKEN_TTL_S", 15 * 60)

# --- Staff sign-in -----------------------------------------------------------
# Dispatchers and support staff sign in with a password and then a code from
# an authenticator app (people.access.passed_second_factor). STAFF_2FA=0 skips
# the code for local demos (`make run`); it needs DEBUG on, and with DEBUG off
# the server refuses to start rather than run without it.
STAFF_2FA = env_bool("STAFF_2FA", True)
if not STAFF_2FA and not DEBUG:
    raise ImproperlyConfigured(
        "STAFF_2FA=0 (staff sign in without an authenticator code) is for local "
        "demos and needs DEBUG=1. Remove STAFF_2FA or set it to 1."
    )
OTP_TOTP_ISSUER = "Care Connect"
# Wrong passwords before staff sign-in is refused for a while: per account
# (phone number) and per client address, counted in Django's cache.
STAFF_LOGIN_MAX_FAILURES = env_int("STAFF_LOGIN_MAX_FAILURES", 5)
STAFF_LOGIN_MAX_FAILURES_PER_IP = env_int("STAFF_LOGIN_MAX_FAILURES_PER_IP", 20)
STAFF_LOGIN_LOCKOUT_S = env_int("STAFF_LOGIN_LOCKOUT_S", 15 * 60)
# The admin site (project.common.admin, which imports no app) signs staff in
# with the console's form (UNFOLD's LOGIN below), lets in the sessions this
# function passes, and sends the others to this page for their code.
STAFF_SESSION_CHECK = "people.access.passed_second_factor"
STAFF_SECOND_FACTOR_URL = "console:two_factor"

# --- Dispatch ----------------------------------------------------------------
MATCH_RADIUS_KM = env_float("MATCH_RADIUS_KM", 10.0)
DRIVER_STALE_AFTER_S = env_int("DRIVER_STALE_AFTER_S", 30)
DISPATCH_MODE = env("DISPATCH_MODE", "auto")
OFFER_TIMEOUT_S = env_int("OFFER_TIMEOUT_S", 15)
NO_SHOW_WAIT_MIN = env_float("NO_SHOW_WAIT_MIN", 5)
# The no-show escalation: the passenger hears the driver is at the door on
# arrival, their caregivers this many minutes later (dispatch.watch).
NO_SHOW_CAREGIVERS_AFTER_MIN = env_float("NO_SHOW_CAREGIVERS_AFTER_MIN", 2)
# The active-trip watchdog (dispatch.alarms): a driver holding a ride who has
# not reported for this long, or who stands still away from the pickup and
# the drop-off for this long, raises an alarm.
WATCHDOG_SILENT_MIN = env_float("WATCHDOG_SILENT_MIN", 3)
WATCHDOG_STOPPED_MIN = env_float("WATCHDOG_STOPPED_MIN", 10)
# Seconds between sweeps of trips under way (escalations, the watchdog) in
# each serving worker; `manage.py sweep_trips` is the timer's backstop.
TRIP_SWEEP_S = env_float("TRIP_SWEEP_S", 5)
# The console's alert lane lists rides waiting for a driver this long.
ALERT_WAITING_MIN = env_float("ALERT_WAITING_MIN", 5)
# Requests a client address may make to the family tracking pages a minute.
SHARE_PAGE_MAX_PER_MIN = env_int("SHARE_PAGE_MAX_PER_MIN", 60)
LOCATION_STORE = env("LOCATION_STORE", "redis" if REDIS_URL else "memory")
LOCATION_PERSIST_INTERVAL_S = env_float("LOCATION_PERSIST_INTERVAL_S", 10.0)
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 64 * 1024)
CONSOLE_MAP_BATCH_S = env_float("CONSOLE_MAP_BATCH_S", 0.25)
# What one socket may cost the others (project.common.socket_limits): its
# messages a second, sustained, and how many it may send at once; past both
# its messages are dropped, and past twice the burst it is closed (4429).
WS_MESSAGE_RATE = env_float("WS_MESSAGE_RATE", 10)
WS_MESSAGE_BURST = env_int("WS_MESSAGE_BURST", 100)
if WS_MESSAGE_RATE <= 0 or WS_MESSAGE_BURST < 1:
    raise ImproperlyConfigured("WS_MESSAGE_RATE must be above 0 and WS_MESSAGE_BURST at least 1.")
# Open sockets from one client address (behind TRUSTED_PROXIES, the client
# they name) and of one user, across all workers (4429 past them). Mobile
# carriers put many phones behind one address, hence the wide first one.
WS_MAX_SOCKETS_PER_IP = env_int("WS_MAX_SOCKETS_PER_IP", 200)
WS_MAX_SOCKETS_PER_USER = env_int("WS_MAX_SOCKETS_PER_USER", 10)
# Bytes a socket's client may leave unread before it is closed (4408).
WS_SEND_BUFFER_BYTES = env_int("WS_SEND_BUFFER_BYTES", 4 * 1024 * 1024)

# --- Notifications (dispatch/notify) -------------------------------------------
# Off: ride events owe no notices at all (nothing is written or sent).
NOTIFY_ENABLED = env_bool("NOTIFY_ENABLED", True)
# Deliver in the serving process too (make run); production runs
# `manage.py notify` (care-connect-notify.service).
NOTIFY_IN_PROCESS = env_bool("NOTIFY_IN_PROCESS", DEBUG)
# Seconds between looks at the outbox when nothing woke the worker.
NOTIFY_POLL_S = env_float("NOTIFY_POLL_S", 0.5)
NOTIFY_BATCH = env_int("NOTIFY_BATCH", 50)
# A claimed row is another worker's to retry once this long has passed.
NOTIFY_CLAIM_S = env_int("NOTIFY_CLAIM_S", 60)
# Tries before a notification is given up; the waits between them double
# from NOTIFY_RETRY_BASE_S.
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 6)
NOTIFY_RETRY_BASE_S = env_float("NOTIFY_RETRY_BASE_S", 30)
# Notification texts to one number in any 24 hours (their cost cap).
NOTIFY_SMS_MAX_PER_DAY = env_int("NOTIFY_SMS_MAX_PER_DAY", 20)
# "The driver is about N minutes away": told at this ETA, once per driver.
NOTIFY_NEAR_MIN = env_float("NOTIFY_NEAR_MIN", 5)
# "Delayed": a planned pickup more than this after the one asked for.
NOTIFY_DELAY_MIN = env_float("NOTIFY_DELAY_MIN", 10)
# A Firebase service account's key file; empty: push is off.
FCM_CREDENTIALS_FILE = env("FCM_CREDENTIALS_FILE")

# Days ended sessions, unregistered phones' code devices and offline
# drivers' last positions are kept (manage.py housekeeping).
RETENTION_DAYS = env_int("RETENTION_DAYS", 90)

# --- Booking ahead and planning runs (dispatch/planning) ------------------------
# The pickup window: this many minutes either side of the planned pickup.
PICKUP_WINDOW_MIN = env_float("PICKUP_WINDOW_MIN", 15)
# A rider's cancel this close to the pickup counts as late (reports).
LATE_CANCEL_MIN = env_float("LATE_CANCEL_MIN", 60)
# Rides may be booked from today up to this many days ahead; recurring series
# are materialised as far.
BOOKING_HORIZON_DAYS = env_int("BOOKING_HORIZON_DAYS", 14)
BOARDING_MIN = env_float("BOARDING_MIN", 2)
WHEELCHAIR_BOARDING_MIN = env_float("WHEELCHAIR_BOARDING_MIN", 5)
# Nobody rides longer than max(MAX_RIDE_FACTOR x direct, direct + MAX_RIDE_EXTRA_MIN).
MAX_RIDE_FACTOR = env_float("MAX_RIDE_FACTOR", 1.5)
MAX_RIDE_EXTRA_MIN = env_float("MAX_RIDE_EXTRA_MIN", 20)
# Travel times: haversine x DETOUR_FACTOR at URBAN_SPEED_KMH, or a routing
# server's table (osrm, valhalla) at ROUTING_URL.
ROUTING_ENGINE = env("ROUTING_ENGINE", "haversine")
ROUTING_URL = env("ROUTING_URL")
ROUTING_TIMEOUT_S = env_float("ROUTING_TIMEOUT_S", 30)
DETOUR_FACTOR = env_float("DETOUR_FACTOR", 1.3)
URBAN_SPEED_KMH = env_float("URBAN_SPEED_KMH", 30)
# The solver stops searching after this long and keeps its best plan.
PLAN_TIMEOUT_S = env_float("PLAN_TIMEOUT_S", 120)
# VROOM's exploration level, 0-5: higher searches more.
PLAN_EXPLORATION = env_int("PLAN_EXPLORATION", 5)
# Solver threads; 0: one per CPU.
PLAN_THREADS = env_int("PLAN_THREADS", 0)
# Seconds between materialising series in a serving process (make run); 0:
# never (production runs `manage.py materialise_series` from a timer).
SERIES_MATERIALISE_EVERY_S = env_int("SERIES_MATERIALISE_EVERY_S", 3600 if DEBUG else 0)

# Threads for database calls from sockets (project.common.db). SQLite takes one
# writer at a time, so there they stay on one thread.
DB_THREADS = 1 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else env_int("DB_THREADS", 4)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}


def _nav(title: str, icon: str, url_name: str, permission: str) -> dict:
    """One sidebar link, shown to those project.common.admin.<permission> lets in."""
    return {
        "title": title,
        "icon": icon,
        "link": reverse_lazy(url_name),
        "permission": f"project.common.admin.{permission}",
    }


UNFOLD = {
    "SITE_TITLE": "Care Connect",
    "SITE_HEADER": "Care Connect support",
    "SITE_SYMBOL": "accessible",
    "SHOW_HISTORY": True,
    # The same phone spellings, and the same failed-login caps, as the console.
    "LOGIN": {"form": "console.forms.ConsoleLoginForm"},
    # The front page: today's counts and the caller lookup's search box.
    "DASHBOARD_CALLBACK": "dispatch.admin.dashboard.dashboard_callback",
    # Grouped by task; each link shows to those who may open it.
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        "navigation": [
            {
                "title": "Answer a call",
                "items": [
                    _nav(
                        "Caller lookup",
                        "support_agent",
                        "admin:dispatch_caller_lookup",
                        "may_answer_calls",
                    ),
                    _nav("Rides", "local_taxi", "admin:dispatch_ride_changelist", "may_view_rides"),
                    _nav("People", "person", "admin:people_user_changelist", "may_view_people"),
                    _nav(
                        "Caregiver links",
                        "diversity_1",
                        "admin:people_caregiverlink_changelist",
                        "may_view_links",
                    ),
                ],
            },
            {
                "title": "Drivers",
                "items": [
                    _nav(
                        "Drivers",
                        "badge",
                        "admin:people_driverprofile_changelist",
                        "may_view_drivers",
                    ),
                    _nav(
                        "Driver states",
                        "share_location",
                        "admin:dispatch_driverstate_changelist",
                        "may_view_driver_states",
                    ),
                    _nav(
                        "Shifts",
                        "schedule",
                        "admin:dispatch_drivershift_changelist",
                        "is_superuser",
                    ),
                ],
            },
            {
                "title": "Sign-in and audit",
                "items": [
                    _nav(
                        "App sessions",
                        "phonelink_lock",
                        "admin:people_apisession_changelist",
                        "may_view_sign_in",
                    ),
                    _nav(
                        "SMS codes",
                        "sms",
                        "admin:people_phoneotpdevice_changelist",
                        "may_view_sign_in",
                    ),
                    _nav(
                        "Audit trail",
                        "history",
                        "admin:people_auditevent_changelist",
                        "may_view_audit",
                    ),
                ],
            },
        ],
    },
}
