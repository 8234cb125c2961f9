from django.urls import path

from kefu.connectors.chat import views

app_name = "chat"

urlpatterns = [
    path("<str:widget_key>/upload", views.upload, name="upload"),
    path("<str:widget_key>/a/<int:attachment_id>", views.attachment, name="attachment"),
    path("<str:widget_key>/demo", views.demo, name="demo"),
]
