#!/usr/bin/env python
"""Django's command-line utility for the helpdesk (agent) example."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    sys.path.insert(1, str(here.parents[1]))  # the repository root, for django_durable
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
