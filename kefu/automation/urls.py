from django.urls import path

from kefu.automation import views

app_name = "automation"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sla/at-risk/", views.at_risk, name="at_risk"),
    path("rules/<int:rule_id>/dry-run/", views.dry_run, name="dry_run"),
]
