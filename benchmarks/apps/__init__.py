"""Workflow modules that benchmark subprocesses (``durable worker --app …``) import."""
