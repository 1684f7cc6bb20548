"""Minimal Django project for mod_py's end-to-end tests: no database, signed-cookie sessions."""
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA = BASE_DIR.parent / "data.bin"

SECRET_KEY = "modpy-e2e-django-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "djdemo.urls"
WSGI_APPLICATION = "djdemo.wsgi.application"
DATABASES: dict = {}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets TZ for the whole process (Apache's log timestamps too)
# uploads above 1 MiB go to a temporary file (TemporaryUploadedFile), smaller ones stay in memory
FILE_UPLOAD_MAX_MEMORY_SIZE = 1 << 20

# As deployed for real: errors (with tracebacks) to stderr, which is Apache's error log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
}
