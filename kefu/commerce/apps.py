from django.apps import AppConfig


class CommerceConfig(AppConfig):
    name = "kefu.commerce"
    label = "commerce"
