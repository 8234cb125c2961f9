from django.urls import path

from kefu.connectors.email import views

app_name = "email"

urlpatterns = [path("<int:inbox_id>/inbound", views.inbound_mail, name="inbound")]
