from django.urls import path

from kefu.connectors.whatsapp import views

app_name = "whatsapp"

urlpatterns = [path("<int:inbox_id>/webhook", views.webhook, name="webhook")]
