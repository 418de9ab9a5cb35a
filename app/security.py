"""Password hashing (argon2) and API-token hashing."""

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
TOKEN_PREFIX = "rk_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def session_fingerprint(password_hash: str) -> str:
    """Stored in a browser session at login and compared on every request, so that changing
    the password ends the user's other sessions. Signed cookies cannot be revoked one by one;
    this revokes them all at once."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
