from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("orders/", views.place_order, name="place-order"),
    path("orders/<str:ref>/", views.order_detail, name="order-detail"),
    path("orders/<str:ref>/delivered/", views.confirm_delivery, name="confirm-delivery"),
]
