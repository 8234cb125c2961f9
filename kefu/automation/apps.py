from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "kefu.automation"
    label = "automation"
    verbose_name = "Automation"

    def ready(self) -> None:
        # Imported for their domain-event subscriptions and task registrations.
        from kefu.automation import handlers, tasks  # noqa: F401
