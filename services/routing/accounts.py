"""Staff passwords and the lockout rule. Pure: no nameko, no pymongo.

Passwords are hashed with argon2id (argon2-cffi's defaults, which follow RFC 9106's
recommendations). Repeated failures slow down, then lock: from the 4th consecutive
failure the account waits 1, 2, 4... seconds before the next attempt, and the 10th locks
it for 15 minutes. Unknown staff cost the same hash as known ones, so timing tells
nothing about who has an account."""
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher()
FREE_FAILURES = 3
LOCK_AFTER = 10
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
_DUMMY_HASH = HASHER.hash("not a real password, only here to spend the same time")


@dataclass(frozen=True)
class LoginVerdict:
    ok: bool
    changes: dict           # to store on the account
    retry_after: float = 0  # seconds, when refused because of the lockout


def hash_password(password):
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    return HASHER.hash(password)


def wait_after(failures):
    """How long the account is closed after `failures` consecutive failures."""
    if failures >= LOCK_AFTER:
        return LOCK_FOR
    if failures > FREE_FAILURES:
        return timedelta(seconds=2 ** (failures - FREE_FAILURES - 1))
    return timedelta(0)


def check_login(account, password, now):
    """account: the stored {password_hash, failures, locked_until} or None (no login).
    A locked account is refused without looking at the password."""
    locked_until = (account or {}).get("locked_until")
    if locked_until is not None and locked_until > now:
        return LoginVerdict(False, {}, (locked_until - now).total_seconds())
    try:
        HASHER.verify(account["password_hash"] if account else _DUMMY_HASH, password)
        matches = account is not None
    except (VerificationError, InvalidHashError):
        matches = False
    if matches:
        changes = {"failures": 0, "locked_until": None, "last_login_at": now}
        if HASHER.check_needs_rehash(account["password_hash"]):
            changes["password_hash"] = HASHER.hash(password)
        return LoginVerdict(True, changes)
    failures = (account or {}).get("failures", 0) + 1
    wait = wait_after(failures)
    return LoginVerdict(False, {"failures": failures,
                                "locked_until": now + wait if wait else None})
