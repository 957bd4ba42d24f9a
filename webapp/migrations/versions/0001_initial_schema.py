"""Initial schema: applications, master key pairs, activations, audit records.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Timestamps are naive UTC in the database (webapp.models.UTCDateTime).
PENDING_CODE = "status IN ('CREATED', 'PENDING_COMMIT')"


def upgrade() -> None:
    op.create_table(
        "application",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application")),
    )

    op.create_table(
        "master_key_pair",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("key_label", sa.String(128), nullable=False),
        sa.Column("public_key", sa.LargeBinary(65), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
            name=op.f("fk_master_key_pair_application_id_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_master_key_pair")),
        sa.UniqueConstraint("key_label", name=op.f("uq_master_key_pair_key_label")),
    )
    op.create_index(
        op.f("ix_master_key_pair_application_id"),
        "master_key_pair",
        ["application_id"],
    )

    op.create_table(
        "activation",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "CREATED",
                "PENDING_COMMIT",
                "ACTIVE",
                "BLOCKED",
                "REMOVED",
                name="activation_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("blocked_reason", sa.String(255), nullable=True),
        sa.Column("activation_code", sa.String(23), nullable=True),
        sa.Column("server_key_label", sa.String(128), nullable=False),
        sa.Column("server_public_key", sa.LargeBinary(65), nullable=False),
        sa.Column("device_public_key", sa.LargeBinary(65), nullable=True),
        sa.Column("ctr_data", sa.LargeBinary(16), nullable=True),
        sa.Column("counter", sa.Integer(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("max_failed_attempts", sa.Integer(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
            name=op.f("fk_activation_application_id_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activation")),
        sa.UniqueConstraint(
            "server_key_label", name=op.f("uq_activation_server_key_label")
        ),
    )
    op.create_index(
        op.f("ix_activation_application_id"), "activation", ["application_id"]
    )
    op.create_index(op.f("ix_activation_user_id"), "activation", ["user_id"])
    op.create_index(
        "uq_activation_pending_code",
        "activation",
        ["activation_code"],
        unique=True,
        sqlite_where=sa.text(PENDING_CODE),
        postgresql_where=sa.text(PENDING_CODE),
    )

    op.create_table(
        "audit_record",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("result", sa.String(64), nullable=False),
        sa.Column("application_id", sa.String(64), nullable=True),
        sa.Column("activation_id", sa.String(36), nullable=True),
        sa.Column("signature_type", sa.String(32), nullable=True),
        sa.Column("counter_offset", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_record")),
    )
    for column in ("activation_id", "application_id", "created_at"):
        op.create_index(op.f(f"ix_audit_record_{column}"), "audit_record", [column])


def downgrade() -> None:
    op.drop_table("audit_record")
    op.drop_table("activation")
    op.drop_table("master_key_pair")
    op.drop_table("application")
