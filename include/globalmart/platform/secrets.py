"""Credentials for the local platform, generated once and kept in ``<state_dir>/secrets.env``.

Nothing secret lives in code or in the repository: a value already set in the environment
(or ``.env``) wins; anything missing is generated with :mod:`secrets` on first start.
"""

from __future__ import annotations

import base64
import os
import secrets

from globalmart.settings import ENV_PREFIX, Settings, load_settings

# env var name -> generator, for each secret the local platform needs
_GENERATORS = {
    f"{ENV_PREFIX}POSTGRES__PASSWORD": lambda: secrets.token_urlsafe(18),
    f"{ENV_PREFIX}AIRFLOW__ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
    # Fernet keys are 32 url-safe base64-encoded bytes
    f"{ENV_PREFIX}AIRFLOW__FERNET_KEY": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    f"{ENV_PREFIX}AIRFLOW__JWT_SECRET": lambda: secrets.token_urlsafe(32),
    f"{ENV_PREFIX}API__KEY": lambda: secrets.token_urlsafe(24),
    f"{ENV_PREFIX}DASHBOARDS__PASSWORD": lambda: secrets.token_urlsafe(12),
}


def _current_values(settings: Settings) -> dict[str, object]:
    return {
        f"{ENV_PREFIX}POSTGRES__PASSWORD": settings.postgres.password,
        f"{ENV_PREFIX}AIRFLOW__ADMIN_PASSWORD": settings.airflow.admin_password,
        f"{ENV_PREFIX}AIRFLOW__FERNET_KEY": settings.airflow.fernet_key,
        f"{ENV_PREFIX}AIRFLOW__JWT_SECRET": settings.airflow.jwt_secret,
        f"{ENV_PREFIX}API__KEY": settings.api.key,
        f"{ENV_PREFIX}DASHBOARDS__PASSWORD": settings.dashboards.password,
    }


def ensure_secrets(settings: Settings) -> Settings:
    """Generate every missing secret into the secrets file; return settings that include them."""
    missing = [name for name, value in _current_values(settings).items() if value is None]
    if not missing:
        return settings
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.secrets_file
    with open(path, "a", encoding="utf-8") as handle:
        for name in missing:
            handle.write(f"{name}={_GENERATORS[name]()}\n")
    path.chmod(0o600)
    return load_settings()
