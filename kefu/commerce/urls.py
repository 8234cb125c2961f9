from django.urls import path

from kefu.commerce import tracking, views
from kefu.commerce.platforms.shopify import views as shopify
from kefu.commerce.platforms.woocommerce import views as woocommerce

app_name = "commerce"

urlpatterns = [
    path("webhooks/shopify/<int:store_id>", shopify.webhook, name="shopify_webhook"),
    path("webhooks/woocommerce/<int:store_id>", woocommerce.webhook, name="woocommerce_webhook"),
    path("webhooks/aftership", tracking.aftership_webhook, name="aftership_webhook"),
    path("customers/<int:customer_id>/panel", views.customer_panel, name="customer_panel"),
    path("orders/<int:order_id>/refund", views.refund, name="refund"),
    path("orders/<int:order_id>/cancel", views.cancel, name="cancel"),
    path("orders/<int:order_id>/address", views.change_address, name="change_address"),
    path("orders/<int:order_id>/returns", views.create_return, name="create_return"),
    path(
        "orders/<int:order_id>/returns/<int:return_id>",
        views.advance_return,
        name="advance_return",
    ),
    path("orders/<int:order_id>/disputes", views.open_dispute, name="open_dispute"),
    path(
        "orders/<int:order_id>/refunds/<int:refund_id>/decide",
        views.decide_refund,
        name="decide_refund",
    ),
]
