from django.db import models


class Product(models.Model):
    sku = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    price_cents = models.PositiveIntegerField()
    stock = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class Order(models.Model):
    class Status(models.TextChoices):
        RESERVED = "reserved"
        SHIPPED = "shipped"
        DELIVERED = "delivered"

    ref = models.CharField(max_length=64, unique=True)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    payment_id = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RESERVED)
    tracking_number = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    @property
    def workflow_id(self) -> str:
        return checkout_workflow_id(self.ref)

    def __str__(self) -> str:
        return self.ref


def checkout_workflow_id(ref: str) -> str:
    return f"checkout-{ref}"
