from django.urls import path

from kefu.workspace import views

app_name = "workspace"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("list/", views.inbox_list, name="list"),
    path("bulk/", views.bulk, name="bulk"),
    path("views/", views.save_filter, name="save_filter"),
    path("views/<int:filter_id>/delete/", views.delete_filter, name="delete_filter"),
    path("c/<int:conversation_id>/", views.conversation, name="conversation"),
    path("c/<int:conversation_id>/timeline/", views.timeline, name="timeline"),
    path("c/<int:conversation_id>/reply/", views.reply, name="reply"),
    path(
        "c/<int:conversation_id>/templates/<int:template_id>/",
        views.template_text,
        name="template_text",
    ),
    path("c/<int:conversation_id>/assign/", views.assign, name="assign"),
    path("c/<int:conversation_id>/status/", views.status, name="status"),
    path("c/<int:conversation_id>/priority/", views.priority, name="priority"),
    path("c/<int:conversation_id>/tags/", views.tags, name="tags"),
    path("c/<int:conversation_id>/merge/", views.merge, name="merge"),
    path(
        "c/<int:conversation_id>/m/<int:message_id>/retry/",
        views.retry_delivery,
        name="retry_delivery",
    ),
    path("c/<int:conversation_id>/customer/", views.customer_edit, name="customer_edit"),
    path("merges/<int:merge_id>/undo/", views.unmerge, name="unmerge"),
    path("m/<int:message_id>/html/", views.message_html, name="message_html"),
    path("a/<int:attachment_id>/", views.attachment, name="attachment"),
]
