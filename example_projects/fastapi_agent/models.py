"""The agent's own tables, in the same database as the workflows' system tables."""

from __future__ import annotations

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ResearchRequest(Base):
    """Written in the same transaction that starts the workflow: both exist or neither."""

    __tablename__ = "agent_requests"
    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))


class Note(Base):
    """One source the agent read, written by its ``read_page`` tool: once per source, even if
    the tool call runs again after a crash (the unique key)."""

    __tablename__ = "agent_notes"
    __table_args__ = (UniqueConstraint("workflow_id", "url"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(String(255), index=True)
    url: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text)


class Report(Base):
    """The approved report, written by the ``publish_report`` tool once a human approved it."""

    __tablename__ = "agent_reports"
    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
