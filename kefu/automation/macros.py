"""Reply templates (macros): per-language bodies rendered in a sandbox with an allow-list.

User text is data, never a template: only an admin-written body is parsed, and the values put
in front of it (the customer's name, an order note...) are plain strings that are printed, never
evaluated. Rendering uses Jinja's ImmutableSandboxedEnvironment over plain dicts that hold only
allow-listed keys, with no globals, a few harmless filters, and guards against huge outputs.
Bodies are also checked when saved: an unknown variable, attribute or filter, or any attribute
starting with "_", is refused (so ``{{ ''.__class__ }}`` never reaches a customer); whatever
slipped through would render as empty text.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kefu.automation.sla import base_language
from kefu.core.errors import InvalidInput

MAX_BODY = 20_000
MAX_OUTPUT = 50_000
MAX_REPEAT = 1_000

# The variables a template may use: root -> allowed attributes.
ALLOWED: dict[str, frozenset[str]] = {
    "customer": frozenset({"name", "first_name", "email", "phone", "language"}),
    "conversation": frozenset(
        {"id", "number", "subject", "status", "priority", "channel", "language", "inbox"}
    ),
    "order": frozenset(
        {
            "number",
            "status",
            "total",
            "currency",
            "created_at",
            "tracking_url",
            "tracking_number",
            "url",
            "items",
        }
    ),
    "shipment": frozenset(
        {"carrier", "tracking_number", "tracking_url", "status", "estimated_delivery", "shipped_at"}
    ),
    "store": frozenset({"name", "url", "email", "phone"}),
    "agent": frozenset({"name", "first_name"}),
}
# Attributes of list items (order.items).
ITEM_FIELDS = frozenset({"name", "sku", "quantity", "price"})
LOOP_FIELDS = frozenset({"index", "index0", "first", "last", "length"})
ALLOWED_FILTERS = frozenset(
    {
        "default",
        "upper",
        "lower",
        "title",
        "capitalize",
        "trim",
        "truncate",
        "replace",
        "round",
        "int",
        "join",
        "length",
        "first",
        "last",
        "e",
        "escape",
    }
)


class _Env(ImmutableSandboxedEnvironment):
    """No globals, no tests beyond the defaults, and bounded arithmetic on strings and lists."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Values are plain dicts: ``order.items`` is the order's items, never dict.items, and no
        # method of a dict is reachable.
        if isinstance(obj, dict):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, dict):
            if argument in obj:
                return obj[argument]
            return self.undefined(obj=obj, name=str(argument))
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            raise SecurityError("powers are not allowed in templates")
        if op == "*":
            if isinstance(left, str | list) or isinstance(right, str | list):
                count = right if isinstance(left, str | list) else left
                if not isinstance(count, int) or count > MAX_REPEAT:
                    raise SecurityError("repetition too large")
            return operator.mul(left, right)
        result = operator.add(left, right)
        if isinstance(result, str | list) and len(result) > MAX_OUTPUT:
            raise SecurityError("text too long")
        return result


def _environment() -> _Env:
    env = _Env(autoescape=False, keep_trailing_newline=True)
    env.globals.clear()
    env.filters = {name: env.filters[name] for name in ALLOWED_FILTERS if name in env.filters}
    return env


_env = _environment()


def _check_node(node: nodes.Node, where: str) -> None:
    """Refuse what the allow-list does not name; called on the parsed body, before saving."""
    for child in node.iter_child_nodes():
        _check_node(child, where)
    if isinstance(node, nodes.Getattr):
        _check_attribute(node.node, node.attr, where)
    elif isinstance(node, nodes.Getitem):
        if not isinstance(node.arg, nodes.Const) or not isinstance(node.arg.value, str | int):
            raise InvalidInput(f"{where}: only constant keys may be used", field="bodies")
        if isinstance(node.arg.value, str):
            _check_attribute(node.node, node.arg.value, where)
    elif isinstance(node, nodes.Filter):
        if node.name not in ALLOWED_FILTERS:
            raise InvalidInput(f"{where}: the filter {node.name!r} is not allowed", field="bodies")
    elif isinstance(node, nodes.Pow | nodes.Mul):
        raise InvalidInput(f"{where}: multiplication is not allowed in templates", field="bodies")
    elif isinstance(node, nodes.Call):
        raise InvalidInput(f"{where}: calls are not allowed in templates", field="bodies")
    elif isinstance(node, nodes.Import | nodes.FromImport | nodes.Include | nodes.Extends):
        raise InvalidInput(f"{where}: templates cannot include other templates", field="bodies")
    elif isinstance(node, nodes.Macro | nodes.CallBlock | nodes.FilterBlock):
        raise InvalidInput(f"{where}: macros are not allowed in templates", field="bodies")


def _check_attribute(owner: nodes.Node, attr: str, where: str) -> None:
    if attr.startswith("_"):
        raise InvalidInput(f"{where}: {attr!r} is not a template variable", field="bodies")
    if isinstance(owner, nodes.Name) and owner.name in ALLOWED:
        if attr not in ALLOWED[owner.name]:
            allowed = ", ".join(sorted(ALLOWED[owner.name]))
            raise InvalidInput(
                f"{where}: {owner.name}.{attr} is not a template variable ({allowed})",
                field="bodies",
            )
    elif isinstance(owner, nodes.Name) and owner.name == "loop":
        if attr not in LOOP_FIELDS:
            raise InvalidInput(f"{where}: loop.{attr} is not allowed", field="bodies")
    elif isinstance(owner, nodes.Name):
        if attr not in ITEM_FIELDS:
            raise InvalidInput(f"{where}: {owner.name}.{attr} is not allowed", field="bodies")
    else:
        raise InvalidInput(f"{where}: {attr!r} cannot be used here", field="bodies")


def _names(target: nodes.Node) -> list[str]:
    if isinstance(target, nodes.Name):
        return [target.name]
    return [n.name for n in target.find_all(nodes.Name)]


def validate_body(body: Any, where: str = "body") -> str:
    """Parse and check one body; returns it. Raises InvalidInput naming what is wrong."""
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput(f"{where}: a template body must be text", field="bodies")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"{where}: longer than {MAX_BODY} characters", field="bodies")
    try:
        tree = _env.parse(body)
    except TemplateSyntaxError as exc:
        raise InvalidInput(f"{where}: line {exc.lineno}: {exc.message}", field="bodies") from None
    loop_names = {
        name
        for node in (*tree.find_all(nodes.For), *tree.find_all(nodes.Assign))
        for name in _names(node.target)  # type: ignore[attr-defined]
    }
    for name in tree.find_all(nodes.Name):
        known = name.name in ALLOWED or name.name in loop_names or name.name == "loop"
        if name.ctx == "load" and not known:
            raise InvalidInput(
                f"{where}: unknown variable {name.name!r}; use {', '.join(sorted(ALLOWED))}",
                field="bodies",
            )
    _check_node(tree, where)
    return body


def validate_bodies(bodies: Any) -> dict[str, str]:
    if not isinstance(bodies, Mapping) or not bodies:
        raise InvalidInput("bodies must map language codes to texts", field="bodies")
    clean = {}
    for language, body in bodies.items():
        code = str(language).strip().lower()
        if not code or len(code) > 16:
            raise InvalidInput(f"{language!r} is not a language code", field="bodies")
        clean[code] = validate_body(body, f"bodies.{code}")
    return clean


def pick_language(bodies: Mapping[str, str], wanted: list[str], default: str) -> str:
    """The body language to use: the first wanted one present (exact, then by base language),
    else the default, else the first body."""
    for code in wanted:
        code = (code or "").lower()
        if code and code in bodies:
            return code
        base = base_language(code)
        for key in bodies:
            if base and base_language(key) == base:
                return key
    if default in bodies:
        return default
    return next(iter(bodies))


def _plain(value: Any) -> Any:
    """Only strings, numbers, booleans, None, and lists/dicts of them reach a template."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value[:200]]
    return str(value)


def build_context(values: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """Keep only allow-listed roots and attributes, as plain data."""
    context: dict[str, dict[str, Any]] = {}
    for root, allowed in ALLOWED.items():
        given = values.get(root) or {}
        context[root] = {k: _plain(v) for k, v in given.items() if k in allowed}
    items = context["order"].get("items")
    if isinstance(items, list):
        context["order"]["items"] = [
            {k: v for k, v in item.items() if k in ITEM_FIELDS}
            for item in items
            if isinstance(item, dict)
        ]
    return context


def render(body: str, values: Mapping[str, Mapping[str, Any] | None]) -> str:
    """Render ``body`` (already validated when saved) with ``values``. Raises InvalidInput when
    the sandbox refuses something at run time."""
    try:
        output = _env.from_string(body).render(build_context(values))
    except SecurityError as exc:
        raise InvalidInput(f"the template was refused: {exc}", field="bodies") from None
    except TemplateSyntaxError as exc:
        raise InvalidInput(f"line {exc.lineno}: {exc.message}", field="bodies") from None
    except (TemplateError, AttributeError, TypeError, ValueError, ArithmeticError) as exc:
        raise InvalidInput(f"the template could not be rendered: {exc}", field="bodies") from None
    return output[:MAX_OUTPUT]


# Providers add order and shipment values for a conversation (the commerce app registers one).
ContextProvider = Callable[[Any], Mapping[str, Mapping[str, Any]]]
_providers: list[ContextProvider] = []


def register_context_provider(provider: ContextProvider) -> ContextProvider:
    if provider not in _providers:
        _providers.append(provider)
    return provider


def conversation_values(conversation: Any, agent: Any = None) -> dict[str, dict[str, Any]]:
    """The template values for a conversation: customer, conversation, store, agent, and what
    registered providers add (order, shipment)."""
    customer = conversation.customer
    name = customer.name or ""
    store = conversation.store if conversation.store_id else None
    values: dict[str, dict[str, Any]] = {
        "customer": {
            "name": name,
            "first_name": name.split()[0] if name.split() else "",
            "email": customer.email,
            "phone": customer.phone,
            "language": customer.language,
        },
        "conversation": {
            "id": conversation.pk,
            "number": f"#{conversation.pk}",
            "subject": conversation.subject,
            "status": conversation.status,
            "priority": conversation.priority,
            "channel": conversation.inbox.kind,
            "inbox": conversation.inbox.name,
            "language": conversation.language,
        },
        "store": {"name": store.name} if store else {},
        "agent": {},
        "order": {},
        "shipment": {},
    }
    if agent is not None:
        values["agent"] = {"name": agent.name, "first_name": agent.first_name or agent.name}
    for provider in _providers:
        for root, extra in (provider(conversation) or {}).items():
            values.setdefault(root, {}).update(extra or {})
    return values
