"""Settings for Marketplace Bot, read from the environment.

Development works with no environment at all (SQLite under ``var/``, a local Redis, a throw-away
secret key). With ``DEBUG=False`` the settings refuse to start unless ``SECRET_KEY`` and
``ALLOWED_HOSTS`` are given, and they turn on what ``manage.py check --deploy`` asks for.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    normalized = value.strip().lower()
    if normalized in {"1", "true", "yes", "on"}:
        return True
    if normalized in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from exc


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG=False the server refuses to start without a "
            "secret key: set SECRET_KEY to a long random string (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))')."
        )
    # Only ever used with DEBUG on: development needs no configuration.
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is not set. With DEBUG=False the server refuses to start without it: "
        "set ALLOWED_HOSTS to a comma-separated list of the shop's host names "
        "(e.g. loja.example.com)."
    )

# daphne's app only makes `manage.py runserver` serve ASGI (websockets included); importing it
# installs Twisted's reactor, ~30 MB that the bots, the tests and `daphne` itself do without.
RUNSERVER = sys.argv[1:2] == ["runserver"]

INSTALLED_APPS = [
    *(["daphne"] if RUNSERVER else []),
    # The admin's modules (and django-import-export's) are found by marketplace/urls.py, which
    # only the web server loads: a bot process saves their memory.
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "axes",
    "marketplace",
    "shop",
    "realtime",
    "bots",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Async-capable (unlike WhiteNoise's), so under ASGI the whole chain runs on the event loop
    # and a request crosses into a worker thread once, for the view, not once per adapter.
    "servestatic.middleware.ServeStaticMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login (admin or API) into a 429.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "marketplace.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "marketplace.wsgi.application"
ASGI_APPLICATION = "marketplace.asgi.application"

# --- Database --------------------------------------------------------------------------------
# SQLite under var/ is the embedded default; production and CI give a PostgreSQL DATABASE_URL.
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DB_POOL", True):
    # Under ASGI every request runs its sync code in a thread of its own, so CONN_MAX_AGE cannot
    # keep a connection between requests; a pool can (psycopg_pool, Django 5.1+). With
    # CONN_HEALTH_CHECKS (above) Django has the pool check a connection as it hands it out, so
    # after a database restart no request gets a dead one (reliability/db_restart.py).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DB_POOL_MIN_SIZE", 2),
            "max_size": env_int("DB_POOL_MAX_SIZE", 20),
            "timeout": env_int("DB_POOL_TIMEOUT", 20),
        }
    }
# Chat search's typo tolerance: how much of a query's trigrams a product name must share
# (pg_trgm word similarity, 0..1). Set per connection so the trigram index serves the search.
SEARCH_MIN_SIMILARITY = float(os.environ.get("SEARCH_MIN_SIMILARITY", "0.45"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c pg_trgm.word_similarity_threshold={SEARCH_MIN_SIMILARITY}"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # var/ is not in git: a fresh clone must not meet "unable to open database file".
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The server and the bots write to the same file from several threads and processes:
    # IMMEDIATE transactions take the write lock up front, so concurrent checkouts queue behind
    # each other (up to the timeout) instead of failing half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run against a file too (not shared-cache memory), so threaded tests behave as in use.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and the channel layer -------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Every multi-process setting (server + bots) needs Redis; "memory" only serves one process alone.
# pubsub or core: chosen by bench/ws_fanout.py (docs/benchmarks.md says why).
CHANNEL_LAYER = os.environ.get("CHANNEL_LAYER", "pubsub")
_CHANNEL_LAYER_BACKENDS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
    "memory": "channels.layers.InMemoryChannelLayer",
}
if CHANNEL_LAYER not in _CHANNEL_LAYER_BACKENDS:
    raise ImproperlyConfigured(
        f"CHANNEL_LAYER must be one of {', '.join(_CHANNEL_LAYER_BACKENDS)}, not {CHANNEL_LAYER!r}."
    )
CHANNEL_LAYERS = {
    "default": {"BACKEND": _CHANNEL_LAYER_BACKENDS[CHANNEL_LAYER]}
    | ({} if CHANNEL_LAYER == "memory" else {"CONFIG": {"hosts": [REDIS_URL]}})
}

# --- Auth --------------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- Internationalization ----------------------------------------------------------------------
LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", _("Brazilian Portuguese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "America/Sao_Paulo"
USE_I18N = True
USE_TZ = True

# --- Static and media files --------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "servestatic.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# In development ServeStatic serves straight from the apps' static folders (no collectstatic).
SERVESTATIC_USE_FINDERS = DEBUG
SERVESTATIC_AUTOREFRESH = DEBUG

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "shop.api.errors.ShopJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "shop.api.pagination.ShopPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "shop.api.errors.shop_exception_handler",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY", SECRET_KEY),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Marketplace Bot API",
    "DESCRIPTION": "Catálogo, autenticação e pedidos da loja.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "shop.api.schema.document_error_responses",
    ],
}

# --- CORS (a separate front end, e.g. the shop's Vite client) ----------------------------------
CORS_ALLOWED_ORIGINS = env_list(
    "CORS_ALLOWED_ORIGINS",
    ["http://localhost:5173", "http://127.0.0.1:5173"] if DEBUG else [],
)
CORS_URLS_REGEX = r"^/api/.*$"

# --- Shop --------------------------------------------------------------------------------------
SHOP_NAME = os.environ.get("SHOP_NAME", "Marketplace Bot")
# Flat delivery fee added to every order, in BRL.
try:
    SHOP_DELIVERY_FEE = Decimal(os.environ.get("SHOP_DELIVERY_FEE", "0.00")).quantize(
        Decimal("0.01")
    )
except InvalidOperation as exc:
    raise ImproperlyConfigured("SHOP_DELIVERY_FEE must be an amount such as 7.50.") from exc

# --- Chat bots ---------------------------------------------------------------------------------
# A conversation's place (step, pending question) is kept in Redis this long after its last
# message; the cart and orders are in the database and outlive it.
BOT_STATE_TTL = env_int("BOT_STATE_TTL", 24 * 60 * 60)
# How long a handled message id is remembered, so a redelivered message is not answered twice.
BOT_SEEN_MESSAGE_TTL = env_int("BOT_SEEN_MESSAGE_TTL", 7 * 24 * 60 * 60)
# How old a catalog page a chat is shown may be (details, carts and checkouts are always fresh).
BOT_CATALOG_CACHE_SECONDS = env_int("BOT_CATALOG_CACHE_SECONDS", 5)
# The language the bots speak when a customer has not chosen one ("english" / "português").
BOT_LANGUAGE = os.environ.get("BOT_LANGUAGE", LANGUAGE_CODE)

# WhatsApp (manage.py runbot whatsapp): WhatsApp Web's address (a local double in tests) and the
# Chromium profile that keeps the login across restarts.
WHATSAPP_WEB_URL = os.environ.get("WHATSAPP_WEB_URL", "https://web.whatsapp.com/")
WHATSAPP_PROFILE_DIR = os.environ.get("WHATSAPP_PROFILE_DIR", str(VAR_DIR / "whatsapp-profile"))
# How long a page matching no known state (loading, QR, chats) is waited on before the bot says
# "WhatsApp mudou a página".
WHATSAPP_UNKNOWN_PAGE_SECONDS = env_int("WHATSAPP_UNKNOWN_PAGE_SECONDS", 60)
# Chromium is restarted (at a quiet moment; the login stays) when its memory passes this many MB
# (PSS), checked every WHATSAPP_MEMORY_CHECK_SECONDS: a last guard against a page or browser that
# keeps growing. 0: never.
WHATSAPP_CHROMIUM_MAX_MB = env_int("WHATSAPP_CHROMIUM_MAX_MB", 600)
WHATSAPP_MEMORY_CHECK_SECONDS = env_int("WHATSAPP_MEMORY_CHECK_SECONDS", 60)
# The page is reloaded (at a quiet moment, a second or two) when its JavaScript heap has grown
# this many MB over its size once the chats showed, checked as often. 0: never.
WHATSAPP_PAGE_HEAP_GROWTH_MB = env_int("WHATSAPP_PAGE_HEAP_GROWTH_MB", 24)

# Telegram (manage.py runbot telegram): the bot's token from @BotFather, and the Bot API's
# address (a local stand-in in tests). The webhook mode needs this site's public https address and
# a secret that Telegram sends back in a header.
TELEGRAM_BOT_TOKEN = os.environ.get("TELEGRAM_BOT_TOKEN", "")
TELEGRAM_API_URL = os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org")
TELEGRAM_WEBHOOK_URL = os.environ.get("TELEGRAM_WEBHOOK_URL", "")
TELEGRAM_WEBHOOK_SECRET = os.environ.get("TELEGRAM_WEBHOOK_SECRET", "")
TELEGRAM_POLL_TIMEOUT = env_int("TELEGRAM_POLL_TIMEOUT", 25)
TELEGRAM_MAX_BACKOFF = env_int("TELEGRAM_MAX_BACKOFF", 30)

# --- Security (production) ---------------------------------------------------------------------
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    if not SECURE_HSTS_PRELOAD:
        # Turned off on purpose through the environment: not a finding any more.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    if env_bool("USE_X_FORWARDED_PROTO", False):
        # Behind a TLS-terminating proxy that sets this header (and strips it from clients).
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Brute force (django-axes) -----------------------------------------------------------------
# Every login through authenticate(): the admin's form and the API's token endpoint. After
# LOGIN_FAILURE_LIMIT failures from one address, or for one username from anywhere, further tries
# get a 429 for LOGIN_LOCKOUT_MINUTES. The cool-off is not extended by tries made during it, so
# an attacker who keeps going cannot keep the real user out; a success clears the count. Behind a
# proxy, run daphne with --proxy-headers so REMOTE_ADDR is the client's address.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "marketplace.lockout.lockout_response"
AXES_VERBOSE = False

# --- Logging -----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per HTTP request to the Telegram API would drown the bot's own log.
        "httpx": {"level": "WARNING"},
    },
}
