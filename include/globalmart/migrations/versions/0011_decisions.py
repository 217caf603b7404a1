"""Human-in-the-loop decisions (issue 21): restock decisions and fraud reviews, one row each

Revision ID: 0011_decisions
Revises: 0010_readmodel_indexes
Create Date: 2026-12-05
"""

from alembic import op

revision = "0011_decisions"
down_revision = "0010_readmodel_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- one decision a person takes in Airflow's Required Actions: opened by an alert, answered
    -- (or timed out and escalated), closed with an outcome. Kept for good: the outcomes are the
    -- judgements detection quality is measured on
    CREATE TABLE decisions (
        decision_id        text PRIMARY KEY,            -- also the Airflow DAG run id
        kind               text NOT NULL CHECK (kind IN ('restock', 'fraud')),
        subject_key        text NOT NULL,               -- restock: product_id; fraud: anomaly_id
        dag_id             text NOT NULL,
        alert_id           text NOT NULL,               -- the alert that opened it
        joined_alert_ids   text[] NOT NULL DEFAULT '{}',  -- later alerts about it while it was open
        facts              jsonb NOT NULL,              -- what the form shows (product, stock / rule, user, amount)
        suggested_quantity integer CHECK (suggested_quantity > 0),
        status             text NOT NULL CHECK (status IN ('open', 'closed')),
        opened_at          timestamptz NOT NULL,
        run_started_at     timestamptz,                 -- its DAG run exists (NULL: still to start)
        waiting_since      timestamptz,                 -- the form is on the Required Actions page
        respond_by         timestamptz,                 -- then it is escalated and closed with the default
        outcome            text CHECK (outcome IN ('reorder', 'ignore', 'confirm_fraud', 'legitimate', 'hold_customer')),
        quantity           integer CHECK (quantity > 0),
        decided_by         text,                        -- the Airflow user; NULL when it timed out
        decided_by_id      text,
        decided_at         timestamptz,
        timed_out          boolean NOT NULL DEFAULT false,
        escalated_at       timestamptz,                 -- the escalation email went out
        restock_event_id   text,                        -- the inventory event an approved reorder sent
        restock_sent_at    timestamptz,
        closed_at          timestamptz,
        CHECK ((status = 'closed') = (closed_at IS NOT NULL AND outcome IS NOT NULL))
    );
    -- one open decision per product or anomaly: the database refuses a second one
    CREATE UNIQUE INDEX decisions_one_open ON decisions (kind, subject_key) WHERE status = 'open';
    -- the throttle (last closed decision of a subject) and an anomaly's review on its row
    CREATE INDEX decisions_subject ON decisions (kind, subject_key, closed_at DESC);
    CREATE INDEX decisions_to_start ON decisions (opened_at) WHERE run_started_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("DROP TABLE decisions")
