"""WSGI entry point: plain HTTP pages and the REST API at scale (granian --interface wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.config.settings")
application = get_wsgi_application()

from kefu.core.gc_tuning import settle_after_startup  # noqa: E402 (needs Django set up)

settle_after_startup()
