from django.apps import AppConfig


class CommerceConfig(AppConfig):
    name = "kefu.commerce"
    label = "commerce"

    def ready(self) -> None:
        # Registers the subscribers, the platform gateways and the webhook topics' handlers
        # (the webhook drain runs in worker processes that never load the URLconf).
        import kefu.commerce.platforms.shopify.client
        import kefu.commerce.platforms.shopify.views
        import kefu.commerce.platforms.woocommerce.client
        import kefu.commerce.platforms.woocommerce.views
        import kefu.commerce.subscribers
        import kefu.commerce.tracking  # noqa: F401
