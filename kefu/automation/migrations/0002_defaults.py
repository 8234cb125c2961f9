"""Default SLA policies and business hours, and the intake cursor.

The policies match what customers expect (chat answered in 30 seconds, messaging in an hour,
email in a day, a complaint acknowledged within 24 hours, marketplaces on their own 24/7 clock
that ignores auto-replies); admins edit or replace them. The intake starts after the messages
that exist now, so installing automation never runs rules on old conversations.
"""

from django.db import migrations

HOUR = 3600
DAY = 86400

POLICIES = [
    dict(
        name="Chat",
        position=10,
        inbox_kinds=["chat"],
        first_response_seconds=30,
        next_response_seconds=120,
        clock="business",
    ),
    dict(
        name="Social and messaging",
        position=20,
        inbox_kinds=["whatsapp", "telegram", "messenger"],
        first_response_seconds=HOUR,
        next_response_seconds=HOUR,
        resolution_seconds=27 * HOUR,  # three working days of 9 hours
        clock="business",
    ),
    dict(
        name="Marketplace messages (24/7, auto-replies do not count)",
        position=30,
        inbox_kinds=["marketplace"],
        first_response_seconds=DAY,
        next_response_seconds=DAY,
        clock="calendar",
        count_auto_replies=False,
    ),
    dict(
        name="Complaints: first contact within 24 hours",
        position=40,
        intents=["complaint"],
        first_response_seconds=DAY,
        next_response_seconds=DAY,
        clock="calendar",
    ),
    dict(
        name="Email",
        position=50,
        inbox_kinds=["email"],
        first_response_seconds=DAY,
        next_response_seconds=DAY,
        resolution_seconds=45 * HOUR,  # five working days of 9 hours
        clock="business",
    ),
    dict(
        name="Everything else",
        position=1000,
        first_response_seconds=DAY,
        next_response_seconds=DAY,
        clock="business",
    ),
]

WEEKDAYS = {str(day): [["09:00", "18:00"]] for day in range(5)}


def forwards(apps, schema_editor):
    SlaPolicy = apps.get_model("automation", "SlaPolicy")
    BusinessHours = apps.get_model("automation", "BusinessHours")
    AutomationState = apps.get_model("automation", "AutomationState")
    Message = apps.get_model("conversations", "Message")
    for fields in POLICIES:
        SlaPolicy.objects.create(pause_statuses=["pending", "on_hold"], **fields)
    BusinessHours.objects.create(name="Default hours", weekly=WEEKDAYS, public_holidays=True)
    last = Message.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    AutomationState.objects.update_or_create(name="intake", defaults={"number": last})
    AutomationState.objects.get_or_create(name="config")


def backwards(apps, schema_editor):
    apps.get_model("automation", "SlaPolicy").objects.all().delete()
    apps.get_model("automation", "BusinessHours").objects.filter(store__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0001_initial"),
        ("conversations", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
