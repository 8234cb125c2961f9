"""Shopify: signed webhooks in (:mod:`.views`), the Admin GraphQL API out (:mod:`.client`)."""
