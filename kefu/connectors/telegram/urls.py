from django.urls import path

from kefu.connectors.telegram import views

app_name = "telegram"

urlpatterns = [path("<int:inbox_id>/webhook", views.webhook, name="webhook")]
