from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from kefu.accounts.views import SignInView
from kefu.config.api import api
from kefu.connectors.chat import views as chat_views


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers; 503 otherwise (for load balancers and `kefu run`)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


admin.site.site_header = "kefu"
admin.site.site_title = "kefu"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("accounts/", include("kefu.accounts.urls")),
    # Language switch for signed-out pages (the sign-in page); agents use their preferences.
    path("i18n/", include("django.conf.urls.i18n")),
    # One sign-in page, behind the rate limit: the back office's own login form has none.
    # (No redirect for a signed-in agent: the back office sends non-staff here, a loop.)
    path(
        "admin/login/",
        SignInView.as_view(redirect_authenticated_user=False),
        name="admin_login",
    ),
    path("admin/", admin.site.urls),
    path("automation/", include("kefu.automation.urls")),
    path("search/", include("kefu.search.urls")),
    path("commerce/", include("kefu.commerce.urls")),
    path("connectors/telegram/", include("kefu.connectors.telegram.urls")),
    path("connectors/whatsapp/", include("kefu.connectors.whatsapp.urls")),
    path("connectors/email/", include("kefu.connectors.email.urls")),
    path("connectors/chat/", include("kefu.connectors.chat.urls")),
    path("chat/widget.js", chat_views.widget_js, name="chat_widget_js"),
    # The agent workspace owns the root: the inbox is the page agents live in.
    path("", include("kefu.workspace.urls")),
]
