from django.urls import path

from kefu.commerce.platforms.shopify import views as shopify

app_name = "commerce"

urlpatterns = [
    path("webhooks/shopify/<int:store_id>", shopify.webhook, name="shopify_webhook"),
]
