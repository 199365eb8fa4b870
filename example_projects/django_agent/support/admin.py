from django.contrib import admin

from .models import Ticket


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("pk", "order_ref", "status", "refund_cents", "created")
    list_filter = ("status",)
