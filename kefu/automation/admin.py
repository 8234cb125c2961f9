"""Back office for automation settings. Saves and deletions go through kefu.automation.actions
(validation, audit log, configuration version); the logs are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from kefu.automation import actions
from kefu.automation.models import (
    BusinessHours,
    Holiday,
    InboxRouting,
    Rule,
    RuleExecution,
    SlaEvent,
    SlaPolicy,
    Template,
)
from kefu.core.errors import KefuError


class _ThroughActions(admin.ModelAdmin):
    """Route saves through an action; an invalid object is reported, not saved."""

    save_action: Any = None
    delete_action: Any = None

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = {}
        for name, value in form.cleaned_data.items():
            field = obj._meta.get_field(name)
            if field.many_to_one:
                data[f"{name}_id"] = value.pk if value is not None else None
            else:
                data[name] = value
        try:
            type(self).save_action(actor=request.user, data=data, **{self.kind: obj})
        except KefuError as exc:
            messages.error(request, exc.message)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        type(self).delete_action(actor=request.user, **{self.kind: obj})

    kind = ""


@admin.register(SlaPolicy)
class SlaPolicyAdmin(_ThroughActions):
    list_display = ["name", "position", "clock", "first_response_seconds", "is_active"]
    save_action = staticmethod(actions.save_policy)
    delete_action = staticmethod(actions.delete_policy)
    kind = "policy"


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


@admin.register(BusinessHours)
class BusinessHoursAdmin(_ThroughActions):
    list_display = ["name", "store", "timezone", "public_holidays"]
    inlines = [HolidayInline]
    save_action = staticmethod(actions.save_business_hours)
    delete_action = staticmethod(actions.delete_business_hours)
    kind = "hours"

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        actions.bump_config()


@admin.register(Rule)
class RuleAdmin(_ThroughActions):
    list_display = ["name", "position", "trigger", "stop_processing", "is_active"]
    list_filter = ["trigger", "is_active"]
    save_action = staticmethod(actions.save_rule)
    delete_action = staticmethod(actions.delete_rule)
    kind = "rule"


@admin.register(Template)
class TemplateAdmin(_ThroughActions):
    list_display = ["name", "shortcut", "usage_count", "is_active"]
    search_fields = ["name", "shortcut"]
    readonly_fields = ["usage_count", "last_used_at"]
    save_action = staticmethod(actions.save_template)
    delete_action = staticmethod(actions.delete_template)
    kind = "template"


@admin.register(InboxRouting)
class InboxRoutingAdmin(admin.ModelAdmin):
    list_display = ["inbox", "mode", "team", "use_skills", "away_grace_minutes"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = {k: v for k, v in form.cleaned_data.items() if k != "inbox"}
        if "team" in data:
            data["team_id"] = data.pop("team").pk if data["team"] else None
        actions.set_routing(actor=request.user, inbox=obj.inbox, data=data)  # type: ignore[arg-type]


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RuleExecution)
class RuleExecutionAdmin(_ReadOnly):
    list_display = ["created_at", "rule_name", "conversation", "trigger", "ok", "depth"]
    list_filter = ["trigger", "ok"]


@admin.register(SlaEvent)
class SlaEventAdmin(_ReadOnly):
    list_display = ["at", "conversation", "target", "kind", "met", "due_at"]
    list_filter = ["target", "kind", "met"]
