"""Unmanaged models over the core's tables, for the admin and the ORM.

The tables are created by this app's migration from ``durable_core.store.schema`` (the one
schema definition); ``managed = False`` keeps Django from ever altering them. Timestamps are
epoch milliseconds; ``*_time`` helpers convert them.
"""

from __future__ import annotations

import datetime as dt

from django.db import models


def ms_to_datetime(value: int | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


class WorkflowStatusChoices(models.TextChoices):
    PENDING = "PENDING"
    ENQUEUED = "ENQUEUED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"


class Workflow(models.Model):
    workflow_id = models.TextField(primary_key=True)
    name = models.TextField()
    status = models.TextField(choices=WorkflowStatusChoices.choices)
    queue_name = models.TextField(null=True, blank=True)
    inputs = models.TextField(null=True, blank=True)
    output = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    executor_id = models.TextField(null=True, blank=True)
    run_token = models.TextField(null=True, blank=True)
    application_version = models.TextField(null=True, blank=True)
    recovery_attempts = models.IntegerField(default=0)
    max_recovery_attempts = models.IntegerField(null=True, blank=True)
    parent_workflow_id = models.TextField(null=True, blank=True)
    priority = models.IntegerField(default=0)
    deduplication_id = models.TextField(null=True, blank=True)
    not_before = models.BigIntegerField(null=True, blank=True)
    timeout_ms = models.BigIntegerField(null=True, blank=True)
    deadline = models.BigIntegerField(null=True, blank=True)
    created_at = models.BigIntegerField()
    updated_at = models.BigIntegerField()
    started_at = models.BigIntegerField(null=True, blank=True)
    finished_at = models.BigIntegerField(null=True, blank=True)
    trace_context = models.TextField(null=True, blank=True)
    partition_key = models.TextField(null=True, blank=True)
    debounce_key = models.TextField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "durable_workflows"
        ordering = ["-created_at"]
        permissions = [
            ("cancel_workflow", "Can cancel workflows"),
            ("resume_workflow", "Can resume workflows"),
            ("fork_workflow", "Can fork workflows"),
            ("manage_queues", "Can pause, resume and limit queues"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.workflow_id}"

    @property
    def created_time(self) -> dt.datetime | None:
        return ms_to_datetime(self.created_at)

    @property
    def finished_time(self) -> dt.datetime | None:
        return ms_to_datetime(self.finished_at)

    @property
    def duration(self) -> dt.timedelta | None:
        start = self.started_at or self.created_at
        end = self.finished_at
        if start is None or end is None:
            return None
        return dt.timedelta(milliseconds=end - start)

    @property
    def steps(self) -> models.QuerySet[Step]:
        return Step.objects.filter(workflow_id=self.workflow_id, step_id__gt=0).order_by("step_id")

    @property
    def children(self) -> models.QuerySet[Workflow]:
        return Workflow.objects.filter(parent_workflow_id=self.workflow_id).order_by("created_at")


class Step(models.Model):
    pk = models.CompositePrimaryKey("workflow_id", "step_id")
    workflow_id = models.TextField()
    step_id = models.IntegerField()
    name = models.TextField()
    output = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    child_workflow_id = models.TextField(null=True, blank=True)
    started_at = models.BigIntegerField(null=True, blank=True)
    finished_at = models.BigIntegerField(null=True, blank=True)
    attempts = models.IntegerField(default=1)

    class Meta:
        managed = False
        db_table = "durable_steps"
        ordering = ["workflow_id", "step_id"]

    def __str__(self) -> str:
        return f"{self.workflow_id} #{self.step_id} {self.name}"

    @property
    def duration(self) -> dt.timedelta | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return dt.timedelta(milliseconds=self.finished_at - self.started_at)


class Notification(models.Model):
    message_id = models.BigAutoField(primary_key=True)
    destination_id = models.TextField()
    topic = models.TextField()
    message = models.TextField(null=True, blank=True)
    idempotency_key = models.TextField(null=True, blank=True)
    created_at = models.BigIntegerField()
    consumed_at = models.BigIntegerField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "durable_notifications"


class Event(models.Model):
    pk = models.CompositePrimaryKey("workflow_id", "key")
    workflow_id = models.TextField()
    key = models.TextField()
    value = models.TextField(null=True, blank=True)
    step_id = models.IntegerField(null=True, blank=True)
    updated_at = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "durable_events"


class EventHistory(models.Model):
    pk = models.CompositePrimaryKey("workflow_id", "step_id")
    workflow_id = models.TextField()
    step_id = models.IntegerField()
    key = models.TextField()
    value = models.TextField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "durable_event_history"


class StreamEntry(models.Model):
    pk = models.CompositePrimaryKey("workflow_id", "key", "seq")
    workflow_id = models.TextField()
    key = models.TextField()
    seq = models.IntegerField()
    value = models.TextField(null=True, blank=True)
    is_close = models.IntegerField(default=0)
    step_id = models.IntegerField(null=True, blank=True)
    created_at = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "durable_streams"


class Executor(models.Model):
    executor_id = models.TextField(primary_key=True)
    application_version = models.TextField(null=True, blank=True)
    hostname = models.TextField(null=True, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    started_at = models.BigIntegerField()
    heartbeat_at = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "durable_executors"

    def __str__(self) -> str:
        return self.executor_id


class TransactionOutput(models.Model):
    pk = models.CompositePrimaryKey("workflow_id", "step_id")
    workflow_id = models.TextField()
    step_id = models.IntegerField()
    output = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    created_at = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "durable_transaction_outputs"


class Schedule(models.Model):
    """A stored schedule (``durable_core.schedules``). The admin writes through a ``Client``,
    never the ORM, so every change is validated by the core as from any other surface."""

    schedule_id = models.TextField(primary_key=True)
    workflow_name = models.TextField()
    cron = models.TextField()
    timezone = models.TextField(default="UTC")
    inputs = models.TextField(null=True, blank=True)
    queue_name = models.TextField(null=True, blank=True)
    catchup = models.TextField(default="latest")
    max_catchup = models.IntegerField(default=100)
    overlap = models.TextField(default="skip")
    paused = models.BooleanField(default=False)
    source = models.TextField(default="api")
    last_tick = models.BigIntegerField(null=True, blank=True)
    last_workflow_id = models.TextField(null=True, blank=True)
    created_at = models.BigIntegerField()
    updated_at = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "durable_schedules"
        ordering = ["schedule_id"]

    def __str__(self) -> str:
        return self.schedule_id
