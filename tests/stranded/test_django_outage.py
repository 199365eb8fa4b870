"""A PostgreSQL outage during a Django ``@transaction`` step pauses the step and resumes it
when the database returns: the workflow succeeds and the ORM write happens once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_outage_mid_django_transaction_step_pauses_and_resumes(fault_db):
    env = {
        **os.environ,
        "FAULT_PG_PORT": str(fault_db.cluster.port),
        "DURABLE_DJANGO_DB_NAME": fault_db.name,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OUTAGE_SECONDS": "3",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.stranded.django_outage_run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "SUCCESS"
    assert report["result"] == 1 and report["rows"] == 1  # written once
    assert report["attempts"] >= 2  # the body met the outage and ran again after it
    assert report["cut"] >= 1 and report["refused"] >= 1  # there was an outage
    assert report["elapsed"] >= 3  # it waited for the database instead of failing
