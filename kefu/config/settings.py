"""kefu settings, all from ``KEFU_*`` environment variables (see docs/configuration.md).

With nothing set, kefu runs embedded: SQLite (WAL) in ``var/``, tasks in a database-backed worker,
realtime through an in-memory channel layer. ``KEFU_DATABASE_URL`` and ``KEFU_REDIS_URL`` switch to
PostgreSQL and Redis without code changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from kefu.config.env import env_bool, env_int, env_list, env_str, env_url, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("KEFU_VAR_DIR", str(BASE_DIR.parent / "var"))).resolve()

SECRET_KEY = secret_key(VAR_DIR)
DEBUG = env_bool("KEFU_DEBUG", False)
ALLOWED_HOSTS = env_list("KEFU_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("KEFU_CSRF_TRUSTED_ORIGINS", [])
# Base URL used in links sent to customers and printed by `kefu run`.
KEFU_BASE_URL = env_str("KEFU_BASE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "django_htmx",
    # ninja's own Swagger assets (served locally): without the app, the API docs load a CDN.
    "ninja",
    "channels",
    "django_tasks",
    "django_tasks_db",
    "kefu.core",
    "kefu.accounts",
    "kefu.customers",
    "kefu.commerce",
    "kefu.conversations",
    "kefu.automation",
    "kefu.search",
    "kefu.workspace",
    "kefu.connectors.email",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Batch ingestion takes turns per process (CPU-heavy; kefu/conversations/middleware.py).
    "kefu.conversations.middleware.BatchAdmissionMiddleware",
    # Content-Security-Policy and the other headers Django does not set (docs/security.md).
    "kefu.core.csp.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in agent's language and time zone win over the browser's (after auth).
    "kefu.accounts.middleware.AgentPreferencesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "kefu.config.urls"
ASGI_APPLICATION = "kefu.config.asgi.application"
WSGI_APPLICATION = "kefu.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kefu.accounts.context_processors.interface",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------------------

DATABASE_URL = env_url("KEFU_DATABASE_URL", schemes={"sqlite", "postgres", "postgresql"})
# NORMAL in WAL mode: a committed message survives any crash of kefu (kill -9 included); only an
# OS crash or power cut may lose the last commits. FULL adds an fsync per commit (about 2 ms on
# the CI disk), which caps one-message-per-request ingestion below 300/s. See docs/decisions.md.
SQLITE_SYNCHRONOUS = env_str("KEFU_SQLITE_SYNCHRONOUS", "NORMAL").upper()
if SQLITE_SYNCHRONOUS not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
    raise ImproperlyConfigured("KEFU_SQLITE_SYNCHRONOUS must be NORMAL, FULL, EXTRA or OFF")


# Persistent connections: opening one per request costs more than a small API request itself
# (the PRAGMAs below run on every connect), for SQLite as much as for PostgreSQL.
DB_CONN_MAX_AGE = env_int("KEFU_DB_CONN_MAX_AGE", 600, minimum=0)


def _sqlite_database(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "CONN_MAX_AGE": DB_CONN_MAX_AGE,
        "OPTIONS": {
            # IMMEDIATE: writers take the lock at BEGIN, so concurrent writers wait on
            # busy_timeout instead of failing with "database is locked" mid-transaction.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                f"PRAGMA synchronous={SQLITE_SYNCHRONOUS};"
                "PRAGMA foreign_keys=ON;"
                "PRAGMA temp_store=MEMORY;"
                "PRAGMA cache_size=-65536;"
                "PRAGMA mmap_size=268435456;"
            ),
        },
        # One test database per test process: two test runs on one checkout never share a file.
        "TEST": {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")},
    }


VAR_DIR.mkdir(parents=True, exist_ok=True)
if DATABASE_URL is None:
    DATABASES = {"default": _sqlite_database(VAR_DIR / "kefu.sqlite3")}
elif DATABASE_URL.startswith("sqlite"):
    DATABASES = {"default": _sqlite_database(Path(dj_database_url.parse(DATABASE_URL)["NAME"]))}
else:
    DATABASES = {
        "default": dict(  # type: ignore[dict-item]
            dj_database_url.parse(
                DATABASE_URL,
                conn_max_age=DB_CONN_MAX_AGE,
                conn_health_checks=True,
            )
        )
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.Agent"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# A signed-in session lasts one working day (plus overtime), then the agent signs in again.
SESSION_COOKIE_AGE = env_int("KEFU_SESSION_HOURS", 12, minimum=1) * 3600
# Sign-in attempts: after this many failures within the window, further attempts from the same
# client address, or for the same username, are refused until the oldest failure ages out.
KEFU_LOGIN_MAX_FAILURES = env_int("KEFU_LOGIN_MAX_FAILURES", 5, minimum=1)
KEFU_LOGIN_WINDOW_SECONDS = env_int("KEFU_LOGIN_WINDOW_SECONDS", 300, minimum=1)
# How many reverse proxies in front of kefu append to X-Forwarded-For; 0 trusts none of it and
# takes the client address from the connection (docs/security.md).
KEFU_TRUSTED_PROXIES = env_int("KEFU_TRUSTED_PROXIES", 0, minimum=0)

# --- Redis: tasks, realtime, cache -------------------------------------------------------------

REDIS_URL = env_url("KEFU_REDIS_URL", schemes={"redis", "rediss", "unix"})

if REDIS_URL:
    TASKS = {
        "default": {
            "BACKEND": "django_tasks_rq.RQBackend",
            "QUEUES": ["default"],
        }
    }
    RQ_QUEUES = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600}}
    # django-tasks-rq's system check requires django_rq's app (queues, registries).
    INSTALLED_APPS.append("django_rq")
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels-redis with redis-py 8 fails handshakes past 100 connections otherwise.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "max_connections": 1000}]},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "kefu",
        }
    }
else:
    TASKS = {
        "default": {
            "BACKEND": "django_tasks_db.DatabaseBackend",
            "QUEUES": ["default"],
        }
    }
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "kefu.core.channel_layer.ThrottledInMemoryChannelLayer"}
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Sign-in failure counters must be shared by every server process (WSGI workers each have their
# own locmem cache): Redis when configured, otherwise a table in the database, created after
# every `migrate` (kefu.accounts.apps). Entries expire after the window; MAX_ENTRIES is high so
# that culling never evicts live counters (docs/security.md).
CACHES["ratelimit"] = (
    {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "kefu-ratelimit",
    }
    if REDIS_URL
    else {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "kefu_ratelimit_cache",
        "OPTIONS": {"MAX_ENTRIES": 1_000_000},  # type: ignore[dict-item]
    }
)

if env_bool("KEFU_TASKS_IMMEDIATE", False):
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

# --- Internationalization --------------------------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文"), ("ar", "العربية")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media --------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Security ----------------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("KEFU_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("KEFU_MAX_REQUEST_BYTES", 25 * 1024 * 1024, minimum=1024)

# --- kefu behaviour ----------------------------------------------------------------------------

# A customer's message joins their latest conversation in the same inbox when that one had
# activity within this window (and was not closed); a solved one reopens. See docs/decisions.md.
KEFU_THREAD_WINDOW_HOURS = env_int("KEFU_THREAD_WINDOW_HOURS", 72, minimum=0)
KEFU_BATCH_MAX = 500
KEFU_DEFAULT_PHONE_REGION = env_str("KEFU_DEFAULT_PHONE_REGION", "US").upper()
# New messages are indexed for search as they are written; off (bulk imports, measuring the
# cost) leaves them for `kefu search catch-up`. Edits, merges and erasures are always applied.
KEFU_SEARCH_INDEXING = env_bool("KEFU_SEARCH_INDEXING", True)
# Outbound HTTP (kefu.core.http) never reaches private, loopback or link-local addresses, except
# the networks listed here (CIDR, e.g. "127.0.0.1/32"; "*" for all). For tests and closed networks.
KEFU_HTTP_ALLOW_PRIVATE = env_list("KEFU_HTTP_ALLOW_PRIVATE", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("KEFU_LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request URL at INFO, and some providers put credentials in the URL
        # (Telegram's bot token): never in kefu's logs.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # One line per task run drowns the console of `kefu run`; failures still log.
        "django_tasks": {"level": "WARNING"},
        "django_tasks_db": {"level": "WARNING"},
    },
}
