"""The default SLA policies and business hours (also installed by migration 0002).

``install()`` recreates them when missing: for a database emptied by hand, and for tests whose
database is flushed between cases.
"""

from __future__ import annotations

from kefu.automation.models import BusinessHours, SlaPolicy

HOUR = 3600
DAY = 86400

POLICIES = [
    {
        "name": "Chat",
        "position": 10,
        "inbox_kinds": ["chat"],
        "first_response_seconds": 30,
        "next_response_seconds": 120,
        "clock": "business",
    },
    {
        "name": "Social and messaging",
        "position": 20,
        "inbox_kinds": ["whatsapp", "telegram", "messenger"],
        "first_response_seconds": HOUR,
        "next_response_seconds": HOUR,
        "resolution_seconds": 27 * HOUR,  # three working days of 9 hours
        "clock": "business",
    },
    {
        "name": "Marketplace messages (24/7, auto-replies do not count)",
        "position": 30,
        "inbox_kinds": ["marketplace"],
        "first_response_seconds": DAY,
        "next_response_seconds": DAY,
        "clock": "calendar",
        "count_auto_replies": False,
    },
    {
        "name": "Complaints: first contact within 24 hours",
        "position": 40,
        "intents": ["complaint"],
        "first_response_seconds": DAY,
        "next_response_seconds": DAY,
        "clock": "calendar",
    },
    {
        "name": "Email",
        "position": 50,
        "inbox_kinds": ["email"],
        "first_response_seconds": DAY,
        "next_response_seconds": DAY,
        "resolution_seconds": 45 * HOUR,  # five working days of 9 hours
        "clock": "business",
    },
    {
        "name": "Everything else",
        "position": 1000,
        "first_response_seconds": DAY,
        "next_response_seconds": DAY,
        "clock": "business",
    },
]

WEEKDAYS_9_TO_6 = {str(day): [["09:00", "18:00"]] for day in range(5)}


def install() -> None:
    """Create the default policies and hours unless some exist (bumps the config version)."""
    from kefu.automation.actions import bump_config

    if not SlaPolicy.objects.exists():
        for fields in POLICIES:
            SlaPolicy.objects.create(pause_statuses=["pending", "on_hold"], **fields)
    if not BusinessHours.objects.filter(store__isnull=True).exists():
        BusinessHours.objects.create(
            name="Default hours", weekly=WEEKDAYS_9_TO_6, public_holidays=True
        )
    bump_config()
