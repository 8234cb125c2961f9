"""WooCommerce: signed webhooks in (:mod:`.views`), the REST API v3 out (:mod:`.client`)."""
