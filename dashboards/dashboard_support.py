"""What every dashboard page shares: settings, the read model, the login, source and freshness lines."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import streamlit as st

from globalmart.readmodel import ReadModel, Result
from globalmart.settings import Settings, load_settings

VIEWS_DIR = Path(__file__).with_name("views")
SIGNED_IN = "signed_in_as"


def settings() -> Settings:
    return load_settings()


@st.cache_resource(show_spinner=False)
def _read_model(postgres_dsn: str, mongo_uri: str, mongo_database: str) -> ReadModel:
    return ReadModel(settings())


def read_model() -> ReadModel:
    """One read model (connection pool) per process and database, shared by every session."""
    current = settings()
    return _read_model(current.postgres.dsn(), current.mongo.uri, current.mongo.database)


# --- login --------------------------------------------------------------------------------

def signed_in() -> bool:
    return bool(st.session_state.get(SIGNED_IN))


def credentials_match(user: str, password: str) -> bool:
    expected = settings().dashboards
    if expected.password is None:
        return False
    return (secrets.compare_digest(user.encode(), expected.user.encode())
            & secrets.compare_digest(password.encode(), expected.password.get_secret_value().encode()))


def login_form() -> None:
    st.title("GlobalMart analytics")
    with st.form("login"):
        user = st.text_input("User", value=settings().dashboards.user)
        password = st.text_input("Password", type="password",
                                 help="GLOBALMART_DASHBOARDS__PASSWORD in .state/secrets.env; `make run` prints it")
        if st.form_submit_button("Sign in"):
            if credentials_match(user, password):
                st.session_state[SIGNED_IN] = user
                st.rerun()
            st.error("Wrong user or password.")


def sidebar() -> None:
    with st.sidebar:
        st.caption(f"Signed in as {st.session_state[SIGNED_IN]}")
        if st.button("Sign out"):
            del st.session_state[SIGNED_IN]
            st.rerun()


# --- showing results ----------------------------------------------------------------------

def _age(as_of: datetime | date) -> str:
    if not isinstance(as_of, datetime):
        return f"{as_of:%Y-%m-%d}"
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=timezone.utc)
    seconds = (datetime.now(timezone.utc) - moment).total_seconds()
    if seconds < 120:
        ago = f"{seconds:.0f} s ago"
    elif seconds < 7200:
        ago = f"{seconds / 60:.0f} min ago"
    elif seconds < 2 * 86400:
        ago = f"{seconds / 3600:.1f} h ago"
    else:
        ago = f"{seconds / 86400:.0f} days ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({ago})"


def source_line(result: Result) -> None:
    """Where the rows come from and how fresh that source is; the reason when there are none."""
    freshness = f"newest data {_age(result.as_of)}" if result.as_of is not None else "empty"
    st.caption(f"Source: {result.source} · {freshness}")
    if result.message:
        st.info(result.message)


def frame(result: Result, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows as a table, with ``columns`` in that order (a field a document lacks is empty)."""
    table = pd.DataFrame(result.rows)
    return table.reindex(columns=columns) if columns and not table.empty else table


def money(value) -> str:
    return "—" if value is None else f"${value:,.2f}"
