"""Channel connectors: one package per inbox kind (``email/``, ``chat/``, ``whatsapp/``, ...).

Each follows one anatomy: ``inbound.py`` (verify and parse a provider delivery into an
``InboundMessage``), ``outbound.py`` (send a queued reply, raising
:class:`kefu.connectors.base.ConnectorError`), ``views.py`` (webhook and setup) and ``fixtures/``
(real provider payloads). :mod:`kefu.connectors.base` holds the sender registry the delivery task
uses.
"""
