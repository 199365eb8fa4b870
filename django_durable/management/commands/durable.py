"""``manage.py durable …``: the core ``durable`` command line, mounted on the Django database.

The same click group as the ``durable`` console script (same commands, options and output:
``workflows list|show|steps|cancel|resume|fork``, ``queues``, ``gc``, ``migrate``,
``worker``), with its Client on ``DURABLE["DATABASE"]`` and its worker built like
``durable_worker``'s. Inspection and control use a Client, so ``resume`` and ``fork`` hand the
work to the workers instead of running it in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections


def _client() -> Any:
    from django_durable.conf import database_alias
    from django_durable.database import database_url
    from durable_core import Client

    return Client(database_url(database_alias()))


def _worker_engine(**options: Any) -> Any:
    from django_durable.engine import build_engine, set_engine

    engine = build_engine(worker=True, **options)
    set_engine(engine)
    return engine


def run(args: list[str], prog_name: str) -> int:
    """Run the core command line with ``args``; returns its exit code."""
    from django_durable.conf import database_alias
    from django_durable.database import database_url
    from durable_core.cli import cli, run_group

    try:
        from django_durable.tasks import TaskNames

        names: Any = TaskNames()
    except ImportError:  # no task framework installed: no tasks to name
        names = None
    return run_group(
        cli,
        args,
        _client,
        prog_name,
        database_url=database_url(database_alias()),
        engine_factory=_worker_engine,
        names=names,
    )


class Command(BaseCommand):
    help = "The durable command line (workflows, queues, gc, migrate, worker) on this project."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER)

    def run_from_argv(self, argv: list[str]) -> None:
        # click parses everything (--help included), so usage, options and output are the
        # core's; the system checks still run first, as for any command.
        try:
            self.check()
        except CommandError as exc:
            self.stderr.write(f"{type(exc).__name__}: {exc}")
            sys.exit(exc.returncode)
        prog = f"{os.path.basename(argv[0])} {argv[1]}"
        try:
            code = run(argv[2:], prog)
        finally:
            connections.close_all()
        sys.exit(code)

    def handle(self, *args: Any, **options: Any) -> None:
        # call_command("durable", "workflows", "list", stdout=...): the same group, output
        # to this command's stdout, errors as CommandError with the message the CLI printed.
        errors = io.StringIO()
        with contextlib.redirect_stdout(self.stdout), contextlib.redirect_stderr(errors):
            code = run(list(args), "manage.py durable")
        if code:
            message = errors.getvalue().strip().removeprefix("Error: ")
            raise CommandError(message or f"exit status {code}", returncode=code)
        if errors.getvalue():
            self.stderr.write(errors.getvalue())
