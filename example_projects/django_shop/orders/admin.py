from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import Order, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price_cents", "stock"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "ref",
        "product",
        "quantity",
        "status",
        "tracking_number",
        "created",
        "workflow",
    ]
    list_filter = ["status"]
    search_fields = ["ref"]

    @admin.display(description="workflow")
    def workflow(self, order: Order) -> str:
        url = reverse("admin:django_durable_workflow_change", args=[order.workflow_id])
        return format_html('<a href="{}">{}</a>', url, order.workflow_id)
