"""Reply templates: sandboxed rendering, allow-list, languages, use from the composer."""

from __future__ import annotations

import pytest

from kefu.automation import actions as automation
from kefu.automation import macros
from kefu.automation.models import Template
from kefu.conversations.models import Conversation, Direction, Message
from kefu.core.errors import InvalidInput
from tests.automation.conftest import inbound
from tests.factories import TeamFactory

INJECTIONS = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ customer.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ config.items() }}",
    "{{ request.environ }}",
    "{{ customer.name|attr('__class__') }}",
    "{{ customer['__class__'] }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{% macro x() %}{% endmacro %}",
    "{{ 'a' * 100000000 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{% for i in range(1000000000) %}x{% endfor %}",
    "{{ customer.name.upper() }}",
    "{{ order.password }}",
    "{{ {}.update }}",
]


@pytest.mark.parametrize("body", INJECTIONS)
def test_injection_payloads_are_refused_when_saved(body):
    with pytest.raises(InvalidInput):
        macros.validate_body(body)


@pytest.mark.parametrize("body", INJECTIONS)
def test_injection_payloads_render_harmlessly_even_unchecked(body):
    values = {"customer": {"name": "Amy"}}
    try:
        output = macros.render(body, values)
    except InvalidInput:
        return
    assert "class" not in output and "<" not in output and "os" not in output
    assert len(output) < 1000


def test_user_text_is_data_never_a_template():
    values = {
        "customer": {"name": "{{ 7*7 }} {% for x in y %}"},
        "order": {"number": "{{ ''.__class__ }}"},
    }
    output = macros.render("Hi {{ customer.name }}, order {{ order.number }}", values)
    assert output == "Hi {{ 7*7 }} {% for x in y %}, order {{ ''.__class__ }}"


def test_only_allow_listed_values_reach_the_template():
    context = macros.build_context(
        {"customer": {"name": "Amy", "password_hash": "x"}, "secrets": {"key": "k"}}
    )
    assert context["customer"] == {"name": "Amy"}
    assert "secrets" not in context


def test_variables_filters_conditions_and_loops():
    body = (
        "{{ customer.first_name|default('there') }}: {{ order.number }} "
        "{% if shipment.tracking_url %}track {{ shipment.tracking_url }}{% endif %} "
        "{% for item in order.items %}{{ loop.index }}.{{ item.name|upper }} {% endfor %}"
    )
    macros.validate_body(body)
    output = macros.render(
        body,
        {
            "customer": {},
            "order": {"number": "1042", "items": [{"name": "mug", "secret": "x"}, {"name": "tee"}]},
            "shipment": {"tracking_url": "https://track.example/1Z999"},
        },
    )
    assert output == "there: 1042 track https://track.example/1Z999 1.MUG 2.TEE "


def test_chinese_and_arabic_templates():
    zh = (
        "{{ customer.name }}您好，您的订单 {{ order.number }} 已发货，"
        "物流单号：{{ shipment.tracking_number }}。"
    )
    ar = (
        "مرحبا {{ customer.name }}، تم شحن طلبك رقم {{ order.number }}. "
        "رابط التتبع: {{ order.tracking_url }}"
    )
    values = {
        "customer": {"name": "王芳"},
        "order": {"number": "A-77", "tracking_url": "https://t.example/x"},
        "shipment": {"tracking_number": "SF123"},
    }
    assert macros.render(macros.validate_body(zh), values) == (
        "王芳您好，您的订单 A-77 已发货，物流单号：SF123。"
    )
    values["customer"]["name"] = "عمر"
    assert macros.render(macros.validate_body(ar), values) == (
        "مرحبا عمر، تم شحن طلبك رقم A-77. رابط التتبع: https://t.example/x"
    )


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [(["zh-CN"], "zh"), (["ar"], "ar"), (["fr"], "en"), (["", "zh-hans"], "zh"), ([], "en")],
)
def test_language_choice(wanted, expected):
    bodies = {"en": "a", "zh": "b", "ar": "c"}
    assert macros.pick_language(bodies, wanted, "en") == expected


@pytest.fixture
def template(db):
    return automation.save_template(
        actor=None,
        data={
            "name": "Shipped",
            "shortcut": "/Shipped",
            "bodies": {
                "en": "Hi {{ customer.first_name }}, #{{ conversation.id }} is on its way.",
                "ar": "مرحبا {{ customer.first_name }}",
            },
            "set_tags": ["shipping"],
            "set_status": "pending",
        },
    )


def test_saved_template_is_normalized(template):
    assert (template.shortcut, template.default_language) == ("shipped", "en")


def test_shortcuts_are_unique(template):
    from kefu.core.errors import Conflict

    with pytest.raises(Conflict):
        automation.save_template(
            actor=None, data={"name": "Other", "shortcut": "shipped", "bodies": {"en": "x"}}
        )


def test_using_a_template_renders_in_the_customer_language_counts_and_applies(
    template, inbox, agent, django_capture_on_commit_callbacks
):
    team = TeamFactory()
    automation.save_template(actor=None, template=template, data={"assign_team_id": team.pk})
    template.refresh_from_db()
    conversation = inbound(
        inbox, "مرحبا، أين طلبي؟ مرّ عشرة أيام ولم يصل", customer_name="Omar Farouk"
    ).conversation
    result = automation.use_template(
        template=template, conversation=conversation, actor=agent, send=True
    )
    assert (result["text"], result["language"]) == ("مرحبا Omar", "ar")
    sent = Message.objects.get(pk=result["message_id"])
    assert (sent.direction, sent.text, sent.author_agent_id) == (
        Direction.OUTBOUND,
        "مرحبا Omar",
        agent.pk,
    )
    conversation = Conversation.objects.get(pk=conversation.pk)
    assert (conversation.status, conversation.team_id) == ("pending", team.pk)
    assert list(conversation.tags.values_list("name", flat=True)) == ["shipping"]
    assert Template.objects.get(pk=template.pk).usage_count == 1


def test_rendering_for_a_preview_counts_nothing(template, inbox):
    conversation = inbound(
        inbox, "Hello, where is my parcel?", customer_name="Amy Lee"
    ).conversation
    text, code = automation.render_template(template=template, conversation=conversation)
    assert (text, code) == (f"Hi Amy, #{conversation.pk} is on its way.", "en")
    assert Template.objects.get(pk=template.pk).usage_count == 0
