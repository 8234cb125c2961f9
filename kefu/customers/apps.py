from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "kefu.customers"
    label = "customers"
