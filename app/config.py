"""One place for configuration: environment variables prefixed RANKERY_ (see design, section 3)."""

from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "dev-only-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RANKERY_", env_file=".env", extra="ignore")

    environment: str = "development"
    data_dir: Path = Path("./var")
    database_url: str = ""
    secret_key: str = DEVELOPMENT_SECRET
    # Cookies get the Secure flag when the site is served over https.
    https_only: bool = False
    session_max_age_seconds: int = 14 * 24 * 3600
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    max_import_bytes: int = 50 * 1024 * 1024
    # Any one HTTP request body (forms, JSON, bulk completions through the API).
    max_request_bytes: int = 10 * 1024 * 1024

    @model_validator(mode="after")
    def _defaults_and_secret(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'rankery.db'}"
        if self.environment != "development" and self.secret_key == DEVELOPMENT_SECRET:
            raise ValueError("RANKERY_SECRET_KEY must be set outside development")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
