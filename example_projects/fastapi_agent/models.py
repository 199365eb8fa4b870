"""The agent's own tables, in the same database as the workflows' system tables."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ResearchRequest(Base):
    """Written in the same transaction that starts the workflow: both exist or neither."""

    __tablename__ = "agent_requests"
    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))


class Note(Base):
    """One source the agent read. Written by a @transaction step: exactly once per source."""

    __tablename__ = "agent_notes"
    __table_args__ = (UniqueConstraint("workflow_id", "url"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("agent_requests.workflow_id"), index=True
    )
    url: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text)


class Report(Base):
    """The approved report, published by a @transaction step."""

    __tablename__ = "agent_reports"
    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    reviewer_comment: Mapped[str] = mapped_column(Text, default="")
