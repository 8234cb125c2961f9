from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "kefu.core"
    label = "core"
    verbose_name = "kefu core"
