"""Background work of the automation app: the intake drain, the periodic tick, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from kefu.automation import intake

logger = logging.getLogger(__name__)


@task()
def drain_intake() -> int:
    """Process new customer messages (SLA, rules, routing); see kefu.automation.intake."""
    return intake.drain()


@task()
def sla_tick() -> dict[str, int]:
    """The periodic pass (see ``intake.tick``), rescheduling itself every TICK_SECONDS.

    Several chains may start (two processes noticing a stale tick at once): a turn is claimed
    by stamping the "tick" row only when no tick ran in the last half interval, and a chain that
    loses the claim ends, so duplicates die out to one chain.
    """
    if not intake.claim_tick():
        return {}
    summary = intake.tick()
    if sla_tick.get_backend().supports_defer:
        run_after = timezone.now() + timedelta(seconds=intake.TICK_SECONDS)
        sla_tick.using(run_after=run_after).enqueue()
    return summary


@task()
def call_webhook(url: str, payload: dict, secret_encrypted: str = "") -> int:
    """POST ``payload`` as JSON through the safe outbound client; returns the HTTP status.

    With a secret, the body is signed: ``X-Kefu-Signature: sha256=<hex HMAC of the body>``.
    """
    from kefu.core import http
    from kefu.core.secrets import decrypt

    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json"}
    if secret_encrypted:
        digest = hmac.new(decrypt(secret_encrypted).encode(), body, hashlib.sha256).hexdigest()
        headers["X-Kefu-Signature"] = f"sha256={digest}"
    response = http.request("POST", url, content=body, headers=headers)
    if response.status_code >= 400:
        logger.warning("webhook %s answered %s", url, response.status_code)
    return response.status_code
