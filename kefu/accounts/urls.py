from django.contrib.auth.views import LogoutView
from django.urls import path

from kefu.accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("password/", views.password_change, name="password_change"),
    path("preferences/", views.preferences, name="preferences"),
    path("invitation/<str:token>/", views.accept_invitation, name="accept_invitation"),
    path("invitations/", views.invitations, name="invitations"),
    path("invitations/<int:pk>/revoke/", views.revoke_invitation, name="revoke_invitation"),
    path("agents/", views.agents, name="agents"),
    path("agents/<int:pk>/", views.agent_detail, name="agent"),
    path("agents/<int:pk>/role/", views.agent_role, name="agent_role"),
    path("agents/<int:pk>/teams/", views.agent_teams, name="agent_teams"),
    path("agents/<int:pk>/inboxes/", views.agent_inboxes, name="agent_inboxes"),
    path("agents/<int:pk>/active/", views.agent_active, name="agent_active"),
    path("teams/", views.teams, name="teams"),
    path("teams/<int:pk>/", views.team_detail, name="team"),
    path("audit/", views.audit_log, name="audit"),
]
