"""The DURABLE setting is validated by Django's system checks."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_durable.checks import check_durable_settings
from django_durable.database import url_from_settings


def ids(errors):
    return [e.id for e in errors]


def test_valid_settings_pass():
    assert check_durable_settings() == []


@pytest.mark.parametrize(
    ("durable", "expected"),
    [
        ({"DATABASE": "nope"}, "django_durable.E004"),
        ({"DATABASE": 3}, "django_durable.E003"),
        ({"EXECUTOR_ID": 12}, "django_durable.E005"),
        ({"APPLICATION_VERSION": ""}, "django_durable.E005"),
        ({"QUEUES": "emails"}, "django_durable.E006"),
        ({"QUEUES": ["ok", 1]}, "django_durable.E006"),
        ({"DATABSE": "default"}, "django_durable.E002"),
        (["default"], "django_durable.E001"),
    ],
)
def test_bad_settings_are_check_errors_with_a_hint(durable, expected):
    with override_settings(DURABLE=durable):
        errors = check_durable_settings()
    assert expected in ids(errors)
    assert all(e.hint for e in errors)


def test_unknown_alias_hint_lists_the_aliases():
    with override_settings(DURABLE={"DATABASE": "missing"}):
        (error,) = check_durable_settings()
    assert "'missing'" in error.msg and "default" in error.hint


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_in_memory_sqlite_and_other_vendors_are_refused():
    dbs = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "my": {"ENGINE": "django.db.backends.mysql", "NAME": "x"},
    }
    with override_settings(DATABASES=dbs, DURABLE={"DATABASE": "default"}):
        assert ids(check_durable_settings()) == ["django_durable.E007"]
    with override_settings(DATABASES=dbs, DURABLE={"DATABASE": "my"}):
        assert ids(check_durable_settings()) == ["django_durable.E008"]


def test_database_urls_from_django_settings():
    assert (
        url_from_settings("default", {"ENGINE": "django.db.backends.sqlite3", "NAME": "/a/b.db"})
        == "sqlite:////a/b.db"
    )
    pg = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app",
        "PASSWORD": "p@ss:/",
        "HOST": "db.local",
        "PORT": 5433,
        "OPTIONS": {"sslmode": "require"},
    }
    assert (
        url_from_settings("default", pg)
        == "postgresql://app:p%40ss%3A%2F@db.local:5433/shop?sslmode=require"
    )
    socket = {**pg, "HOST": "/var/run/postgresql", "PASSWORD": "", "OPTIONS": {}}
    assert (
        url_from_settings("default", socket)
        == "postgresql://app@localhost:5433/shop?host=%2Fvar%2Frun%2Fpostgresql"
    )


@pytest.mark.parametrize(
    "durable",
    [
        "default",
        {"DATABSE": "default"},
        {"DATABASE": "nope"},
        {"QUEUES": "emails"},
        {"EXECUTOR_ID": 5},
    ],
)
def test_checks_run_with_every_command_not_only_check_database(durable):
    """`check`, `runserver`, `migrate` and `durable_worker` run the checks that are not
    tagged `database`: the DURABLE checks must be among them."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with override_settings(DURABLE=durable), pytest.raises(SystemCheckError, match="DURABLE"):
        call_command("check")


def test_get_engine_refuses_bad_settings_with_the_check_message(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    import django_durable.engine as engine_module

    monkeypatch.setattr(engine_module, "_engine", None)
    with override_settings(DURABLE={"DATABASE": "nope"}):
        with pytest.raises(ImproperlyConfigured, match="unknown database alias 'nope'"):
            engine_module.get_engine()
    with override_settings(DURABLE={"QUEUES": "emails"}):
        with pytest.raises(ImproperlyConfigured, match="QUEUES"):
            engine_module.get_engine()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_options_that_lock_are_warned_about():
    def warnings_for(options):
        dbs = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/tmp/x.db"}}
        if options is not None:
            dbs["default"]["OPTIONS"] = options
        with override_settings(DATABASES=dbs, DURABLE={}):
            return ids(check_durable_settings())

    assert warnings_for({"transaction_mode": "IMMEDIATE", "timeout": 20}) == []
    assert warnings_for({"transaction_mode": "DEFERRED"}) == ["django_durable.W001"]
    assert warnings_for({"transaction_mode": "IMMEDIATE", "timeout": 1}) == ["django_durable.W002"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_defaults_fill_in_only_what_is_missing(settings):
    from django_durable.database import SQLITE_DEFAULTS, apply_sqlite_defaults

    settings.DATABASES = {
        **settings.DATABASES,
        "extra": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/tmp/y.db"},
        "mine": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "/tmp/z.db",
            "OPTIONS": {"timeout": 60},
        },
    }
    assert apply_sqlite_defaults("extra") == SQLITE_DEFAULTS
    assert settings.DATABASES["extra"]["OPTIONS"] == SQLITE_DEFAULTS
    assert apply_sqlite_defaults("mine") == {"transaction_mode": "IMMEDIATE"}
    assert settings.DATABASES["mine"]["OPTIONS"]["timeout"] == 60
