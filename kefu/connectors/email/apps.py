from django.apps import AppConfig


class EmailConnectorConfig(AppConfig):
    """The email connector's own state: the IMAP poller's cursors (``kefu poll_mail``)."""

    name = "kefu.connectors.email"
    label = "mail"
    verbose_name = "Email connector"
