"""Human review and early warning: tasks, task_completions, reviews, overrides, alerts, deliveries.

Revision ID: 0002_workflow
Revises: 0001_identity_audit
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.db.base import UTCDateTime

revision: str = "0002_workflow"
down_revision: str | None = "0001_identity_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Every table of this revision is append-only (``service.db.workflow``).
APPEND_ONLY_TABLES: tuple[str, ...] = (
    "tasks",
    "task_completions",
    "reviews",
    "overrides",
    "alerts",
    "alert_deliveries",
)
_TIERS = "IN ('T1', 'T2', 'T3', 'T4')"


def _sqlite_triggers(table: str) -> tuple[str, ...]:
    return (
        f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
        f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
    )


def _postgres_triggers(table: str) -> tuple[str, ...]:
    return (
        f"""CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION workflow_append_only()""",
    )


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("village_code", sa.String(12), nullable=False),
        sa.Column("township_code", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("tier", sa.String(2), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.CheckConstraint(f"tier {_TIERS}", name=op.f("ck_tasks_tier_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_child_episode", "tasks", ["child_id", "episode"])
    op.create_index("ix_tasks_village_due", "tasks", ["village_code", "due_at"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("village_code", sa.String(12), nullable=False),
        sa.Column("township_code", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("activity", sa.String(24), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_role", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("computed_tier", sa.String(2), nullable=False),
        sa.Column("tier_in_force", sa.String(2), nullable=False),
        sa.Column("hard_rule_t1", sa.Boolean(), nullable=False),
        sa.Column("rules_fired", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("proposed_tier", sa.String(2), nullable=True),
        sa.Column("reason_code", sa.String(32), nullable=True),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("answers_review_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_tier", sa.String(2), nullable=True),
        sa.Column("report_agency", sa.String(128), nullable=True),
        sa.Column("report_reference", sa.String(64), nullable=True),
        sa.Column("reported_at", UTCDateTime(), nullable=True),
        sa.Column("girl", sa.Boolean(), nullable=True),
        sa.Column("disability", sa.Boolean(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('visit', 'mandatory_report', 'decision', 'fall_confirmation')",
            name=op.f("ck_reviews_kind_known"),
        ),
        sa.CheckConstraint(
            "decision IS NULL OR decision IN ('confirm', 'override')",
            name=op.f("ck_reviews_decision"),
        ),
        sa.CheckConstraint(f"computed_tier {_TIERS}", name=op.f("ck_reviews_computed_tier_known")),
        sa.CheckConstraint(
            f"proposed_tier IS NULL OR proposed_tier {_TIERS}",
            name=op.f("ck_reviews_proposed_tier_known"),
        ),
        sa.CheckConstraint(
            f"decided_tier IS NULL OR decided_tier {_TIERS}",
            name=op.f("ck_reviews_decided_tier_known"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["users.id"], name=op.f("fk_reviews_reviewer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["answers_review_id"],
            ["reviews.id"],
            name=op.f("fk_reviews_answers_review_id_reviews"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_reviewer_id"), "reviews", ["reviewer_id"])
    op.create_index(op.f("ix_reviews_created_at"), "reviews", ["created_at"])
    op.create_index(op.f("ix_reviews_answers_review_id"), "reviews", ["answers_review_id"])
    op.create_index("ix_reviews_child_created", "reviews", ["child_id", "created_at"])
    op.create_index("ix_reviews_village_kind", "reviews", ["village_code", "kind"])

    op.create_table(
        "task_completions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_completions_task_id_tasks")
        ),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name=op.f("fk_task_completions_review_id_reviews")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_completions")),
        sa.UniqueConstraint("task_id", name=op.f("uq_task_completions_task_id")),
    )
    op.create_index(op.f("ix_task_completions_review_id"), "task_completions", ["review_id"])

    op.create_table(
        "overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("village_code", sa.String(12), nullable=False),
        sa.Column("township_code", sa.String(12), nullable=False),
        sa.Column("computed_tier", sa.String(2), nullable=False),
        sa.Column("tier_before", sa.String(2), nullable=False),
        sa.Column("tier", sa.String(2), nullable=False),
        sa.Column("rule_tier", sa.String(2), nullable=True),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("reason_text", sa.Text(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_role", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("girl", sa.Boolean(), nullable=True),
        sa.Column("disability", sa.Boolean(), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.CheckConstraint(f"tier {_TIERS}", name=op.f("ck_overrides_tier_known")),
        sa.CheckConstraint(
            f"computed_tier {_TIERS}", name=op.f("ck_overrides_computed_tier_known")
        ),
        sa.CheckConstraint(
            "length(trim(reason_text)) > 0", name=op.f("ck_overrides_reason_written")
        ),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name=op.f("fk_overrides_review_id_reviews")
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["users.id"], name=op.f("fk_overrides_reviewer_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overrides")),
        sa.UniqueConstraint("review_id", name=op.f("uq_overrides_review_id")),
    )
    op.create_index(op.f("ix_overrides_reviewer_id"), "overrides", ["reviewer_id"])
    op.create_index(op.f("ix_overrides_created_at"), "overrides", ["created_at"])
    op.create_index("ix_overrides_child_created", "overrides", ["child_id", "created_at"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("village_code", sa.String(12), nullable=False),
        sa.Column("township_code", sa.String(12), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("tier", sa.String(2), nullable=False),
        sa.Column("previous_tier", sa.String(2), nullable=True),
        sa.Column("tier_rise", sa.Boolean(), nullable=False),
        sa.Column("hard_rules", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(f"tier {_TIERS}", name=op.f("ck_alerts_tier_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_alerts_dedup_key")),
    )
    op.create_index(op.f("ix_alerts_run_id"), "alerts", ["run_id"])
    op.create_index(op.f("ix_alerts_raised_at"), "alerts", ["raised_at"])
    op.create_index("ix_alerts_village_raised", "alerts", ["village_code", "raised_at"])
    op.create_index("ix_alerts_child", "alerts", ["child_id"])

    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(255), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_deliveries_alert_id_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
    )
    op.create_index("ix_alert_deliveries_alert_ok", "alert_deliveries", ["alert_id", "ok"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for statement in _sqlite_triggers(table):
                op.execute(statement)
    elif dialect == "postgresql":
        op.execute(
            """CREATE FUNCTION workflow_append_only() RETURNS trigger AS $$
               BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$
               LANGUAGE plpgsql"""
        )
        for table in APPEND_ONLY_TABLES:
            for statement in _postgres_triggers(table):
                op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY_TABLES:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        elif dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS workflow_append_only()")
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
    op.drop_table("overrides")
    op.drop_table("task_completions")
    op.drop_table("reviews")
    op.drop_table("tasks")
