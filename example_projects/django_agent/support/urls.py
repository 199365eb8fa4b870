from django.urls import path

from . import views

app_name = "support"
urlpatterns = [
    path("", views.index, name="index"),
    path("tickets/", views.open_ticket, name="open-ticket"),
    path("tickets/<int:pk>/", views.ticket_detail, name="ticket-detail"),
    path("tickets/<int:pk>/decision/", views.decide, name="ticket-decision"),
]
