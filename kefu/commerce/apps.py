from django.apps import AppConfig


class CommerceConfig(AppConfig):
    name = "kefu.commerce"
    label = "commerce"

    def ready(self) -> None:
        # Registers the subscribers and the platform gateways.
        from kefu.commerce import subscribers  # noqa: F401
        from kefu.commerce.platforms.shopify import client  # noqa: F401
        from kefu.commerce.platforms.woocommerce import client as woo  # noqa: F401
