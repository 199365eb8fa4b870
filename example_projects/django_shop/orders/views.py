from __future__ import annotations

import uuid

from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

import django_durable
from durable_core.errors import WorkflowNotFound

from .models import Order, Product, checkout_workflow_id
from .workflows import checkout, checkouts


def index(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "orders/index.html",
        {
            "products": Product.objects.order_by("name"),
            "orders": Order.objects.select_related("product").order_by("-created")[:20],
        },
    )


@require_POST
def place_order(request: HttpRequest) -> HttpResponse:
    product = get_object_or_404(Product, sku=request.POST.get("sku"))
    quantity = max(1, int(request.POST.get("quantity") or 1))
    ref = uuid.uuid4().hex[:12]
    with transaction.atomic():
        # The workflow row joins this transaction: it exists only if the transaction commits,
        # and the worker picks it up after the commit.
        checkouts.enqueue(
            checkout,
            ref,
            product.sku,
            quantity,
            product.price_cents * quantity,
            workflow_id=checkout_workflow_id(ref),
        )
    return redirect("order-detail", ref=ref)


def order_detail(request: HttpRequest, ref: str) -> HttpResponse:
    engine = django_durable.get_engine()
    try:
        status = engine.retrieve_workflow(checkout_workflow_id(ref)).status()
    except WorkflowNotFound:
        raise Http404("no such order") from None
    return render(
        request,
        "orders/order_detail.html",
        {
            "ref": ref,
            "order": Order.objects.filter(ref=ref).select_related("product").first(),
            "workflow": status,
            "steps": engine.list_steps(status.workflow_id),
            "stage": engine.get_event(status.workflow_id, "stage", timeout=0),
        },
    )


@require_POST
def confirm_delivery(request: HttpRequest, ref: str) -> HttpResponse:
    engine = django_durable.get_engine()
    try:
        engine.send(checkout_workflow_id(ref), {"by": "carrier"}, topic="delivery")
    except WorkflowNotFound:
        raise Http404("no such order") from None
    return redirect("order-detail", ref=ref)
