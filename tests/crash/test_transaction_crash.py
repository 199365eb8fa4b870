"""A @transaction step killed around its commit: its database effect happens exactly once."""

from __future__ import annotations

import json

import pytest

from tests.crash.harness import app_rows, create_app_table, wait_for
from tests.crash.workers import insert_once, insert_row, read_lines

pytestmark = [pytest.mark.crash, pytest.mark.timeout(90)]

TX_STEP = insert_row.__module__ + ".insert_row"


def start(fleet, database_url, log, block_inside, *options):
    create_app_table(database_url)
    args = json.dumps([log, "row-1", block_inside])
    return fleet.spawn(
        "exec-tx", "--start", insert_once.__name__, "--workflow-id", "wf-tx", "--args", args,
        "--log", log, *options,
    )  # fmt: skip


def finish_after_restart(fleet, client, database_url, log):
    fleet.spawn("exec-tx")
    c = client()
    assert c.retrieve_workflow("wf-tx").result(timeout=30) == "row-1"
    assert app_rows(database_url) == ["row-1"]
    steps = c.list_steps("wf-tx")
    assert [s.name for s in steps].count(TX_STEP) == 1
    assert read_lines(log).count("begin") == 1
    assert read_lines(log).count("end") == 1


def test_killed_inside_the_transaction_rolls_back_and_runs_once_more(
    fleet, client, database_url, tmp_path
):
    log = str(tmp_path / "effects.log")
    first = start(fleet, database_url, log, True)
    wait_for(lambda: "inserted row-1" in read_lines(log), 30, "the insert to run")
    first.kill()
    assert app_rows(database_url) == []  # the open transaction died with the process

    finish_after_restart(fleet, client, database_url, log)
    assert read_lines(log).count("inserted row-1") == 2


def test_killed_after_commit_before_checkpoint_does_not_insert_again(
    fleet, client, database_url, tmp_path
):
    log = str(tmp_path / "effects.log")
    first = start(fleet, database_url, log, False, "--hold-checkpoint", TX_STEP)
    wait_for(lambda: "committed wf-tx" in read_lines(log), 30, "the transaction to commit")
    first.kill()
    assert app_rows(database_url) == ["row-1"]  # committed, but no checkpoint in durable_steps
    assert [s.name for s in client().list_steps("wf-tx")] == [insert_once.__module__ + ".note"]

    finish_after_restart(fleet, client, database_url, log)
    # The recorded transaction output was found: the step body did not run a second time.
    assert read_lines(log).count("inserted row-1") == 1
