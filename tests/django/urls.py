from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("durable/", include("django_durable.urls")),
    path("support/", include("support.urls")),
    path("", include("orders.urls")),
]
