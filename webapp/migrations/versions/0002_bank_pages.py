"""Demo bank tables of the web pages: operations and confirmed payments.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bank_operation",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("activation_id", sa.String(36), nullable=True),
        sa.Column("payload_data", sa.Text(), nullable=False),
        sa.Column("operation_data", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(24), nullable=False),
        sa.Column("offline_data", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING",
                "CONFIRMED",
                "CANCELLED",
                "FAILED",
                name="bank_operation_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts_left", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_operation")),
    )
    op.create_index(op.f("ix_bank_operation_user_id"), "bank_operation", ["user_id"])

    op.create_table(
        "bank_payment",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("operation_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("activation_id", sa.String(36), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("iban", sa.String(34), nullable=False),
        sa.Column("bic", sa.String(11), nullable=True),
        sa.Column("due_date", sa.String(10), nullable=False),
        sa.Column("note", sa.String(140), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["bank_operation.id"],
            name=op.f("fk_bank_payment_operation_id_bank_operation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_payment")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_bank_payment_operation_id")),
    )
    op.create_index(op.f("ix_bank_payment_user_id"), "bank_payment", ["user_id"])


def downgrade() -> None:
    op.drop_table("bank_payment")
    op.drop_table("bank_operation")
