"""factory-boy factories for the domain core."""

from __future__ import annotations

import factory
from django.utils import timezone

from kefu.accounts.models import Agent, Role, Team
from kefu.commerce.models import Store
from kefu.conversations.models import Conversation, Inbox, InboxKind
from kefu.customers.models import Customer, Identity


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    name = factory.Sequence(lambda n: f"Store {n}")
    country = "US"


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"agent{n}")
    role = Role.AGENT
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")


class InboxFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Inbox

    name = factory.Sequence(lambda n: f"Inbox {n}")
    kind = InboxKind.API
    store = factory.SubFactory(StoreFactory)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Faker("name")


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Identity

    customer = factory.SubFactory(CustomerFactory)
    kind = "email"
    value = factory.Sequence(lambda n: f"person{n}@example.com")


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    inbox = factory.SubFactory(InboxFactory)
    customer = factory.SubFactory(CustomerFactory)
    last_message_at = factory.LazyFunction(timezone.now)
