"""services/routing/accounts.py: argon2 password hashes and the lockout rule; and
identity_flows.login over an in-memory account repository.

argon2 costs some 50 ms a call: the real hasher is used where the hash itself is the
point; the lockout rules run against a plain stand-in hasher."""
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from closeloop_shared import org, tokens
from services.routing import accounts, identity_flows
from tests.unit.fakes import FakeAccounts

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"
HASH = accounts.hash_password(PASSWORD)   # one real hash for the module
CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")


class PlainHasher:
    """Stands in for argon2 where only the lockout logic matters; counts calls."""

    def __init__(self):
        self.verified = []

    def hash(self, password):
        return "plain$" + password

    def verify(self, stored, password):
        self.verified.append(stored)
        if stored != "plain$" + password:
            raise VerifyMismatchError()
        return True

    def check_needs_rehash(self, stored):
        return False


@pytest.fixture
def plain():
    hasher = PlainHasher()
    with mock.patch.object(accounts, "HASHER", hasher), \
            mock.patch.object(accounts, "_DUMMY_HASH", "plain$the dummy"):
        yield hasher


def account(failures=0, locked_until=None, password_hash="plain$" + PASSWORD):
    return {"_id": "sh-xh-mg", "password_hash": password_hash, "failures": failures,
            "locked_until": locked_until}


# -- the schedule ---------------------------------------------------------------------------

@pytest.mark.parametrize("failures, wait", [
    (0, 0), (1, 0), (2, 0), (3, 0),          # three free failures
    (4, 1), (5, 2), (6, 4), (7, 8), (8, 16), (9, 32),
    (10, 900), (11, 900), (100, 900),        # locked for 15 minutes
])
def test_wait_after(failures, wait):
    assert accounts.wait_after(failures) == timedelta(seconds=wait)


def test_the_schedule_only_grows_and_is_bounded():
    waits = [accounts.wait_after(n) for n in range(0, 40)]
    assert waits == sorted(waits)
    assert max(waits) == accounts.LOCK_FOR


# -- check_login ------------------------------------------------------------------------------

def test_the_right_password_logs_in_and_resets_the_failures(plain):
    verdict = accounts.check_login(account(failures=3, locked_until=NOW - timedelta(seconds=1)), PASSWORD, NOW)
    assert verdict.ok and verdict.retry_after == 0
    assert verdict.changes == {"failures": 0, "locked_until": None, "last_login_at": NOW}


@pytest.mark.parametrize("failures_before, locked_for", [
    (0, None), (2, None), (3, timedelta(seconds=1)), (4, timedelta(seconds=2)),
    (8, timedelta(seconds=32)), (9, timedelta(minutes=15)), (10, timedelta(minutes=15)),
])
def test_a_wrong_password_counts_a_failure(plain, failures_before, locked_for):
    verdict = accounts.check_login(account(failures=failures_before), "wrong password", NOW)
    assert not verdict.ok and verdict.retry_after == 0
    assert verdict.changes == {"failures": failures_before + 1,
                               "locked_until": NOW + locked_for if locked_for else None}


def test_a_locked_account_is_refused_without_checking_the_password(plain):
    locked = account(failures=10, locked_until=NOW + timedelta(minutes=10))
    for password in (PASSWORD, "wrong password"):
        verdict = accounts.check_login(locked, password, NOW)
        assert not verdict.ok
        assert verdict.changes == {}                   # no failure counted while locked
        assert verdict.retry_after == 600
    assert plain.verified == []                       # and the password was never looked at


def test_the_lock_ends_exactly_at_locked_until(plain):
    locked = account(failures=4, locked_until=NOW)
    assert accounts.check_login(locked, PASSWORD, NOW).ok


def test_a_failure_after_the_lock_locks_again(plain):
    verdict = accounts.check_login(account(failures=10, locked_until=NOW - timedelta(seconds=1)), "nope", NOW)
    assert verdict.changes == {"failures": 11, "locked_until": NOW + accounts.LOCK_FOR}


def test_an_unknown_account_costs_a_hash_and_fails(plain):
    for password in ("whatever", "the dummy"):   # not even the dummy hash's own password
        verdict = accounts.check_login(None, password, NOW)
        assert not verdict.ok and verdict.retry_after == 0
    assert plain.verified == ["plain$the dummy", "plain$the dummy"]


def test_an_unknown_account_costs_the_same_real_hash():
    assert accounts._DUMMY_HASH.startswith("$argon2id$")
    assert not accounts.check_login(None, PASSWORD, NOW).ok


def test_a_corrupt_stored_hash_fails_without_crashing():
    verdict = accounts.check_login(account(password_hash="not-a-hash"), PASSWORD, NOW)
    assert not verdict.ok and verdict.changes["failures"] == 1


def test_the_real_hash_verifies_and_needs_no_rehash():
    assert HASH.startswith("$argon2id$") and PASSWORD not in HASH
    verdict = accounts.check_login(account(password_hash=HASH), PASSWORD, NOW)
    assert verdict.ok and "password_hash" not in verdict.changes
    assert not accounts.check_login(account(password_hash=HASH), PASSWORD + "x", NOW).ok


def test_a_hash_of_weaker_parameters_is_upgraded_at_login():
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    verdict = accounts.check_login(account(password_hash=weak), PASSWORD, NOW)
    assert verdict.ok
    upgraded = verdict.changes["password_hash"]
    assert upgraded != weak and not accounts.HASHER.check_needs_rehash(upgraded)
    assert accounts.HASHER.verify(upgraded, PASSWORD)


@pytest.mark.parametrize("password", ["", "short", "nine-char"])
def test_hash_password_refuses_short_passwords(password):
    with pytest.raises(ValueError, match="at least 10"):
        accounts.hash_password(password)


def test_ten_characters_are_enough(plain):
    assert accounts.hash_password("0123456789") == "plain$0123456789"


def test_two_real_hashes_of_one_password_differ():
    assert accounts.HASHER.hash(PASSWORD) != HASH


# -- the rule over any sequence of attempts ---------------------------------------------------

class LoginMachine(RuleBasedStateMachine):
    """Logins with right and wrong passwords as time passes, the account stored as
    identity_flows stores it (changes applied)."""

    def __init__(self):
        super().__init__()
        self.patch = mock.patch.object(accounts, "HASHER", PlainHasher())
        self.patch.start()
        self.account = account()
        self.now = NOW
        self.streak = 0   # consecutive counted failures

    def teardown(self):
        self.patch.stop()

    @rule(seconds=st.sampled_from([0, 1, 2, 5, 30, 600, 901]))
    def time_passes(self, seconds):
        self.now += timedelta(seconds=seconds)

    @rule(right=st.booleans())
    def attempt(self, right):
        before = dict(self.account)
        locked = before["locked_until"] is not None and before["locked_until"] > self.now
        verdict = accounts.check_login(before, PASSWORD if right else "wrong password", self.now)
        if locked:
            assert not verdict.ok and verdict.changes == {}
            assert verdict.retry_after == (before["locked_until"] - self.now).total_seconds() > 0
        elif right:
            assert verdict.ok
            self.streak = 0
        else:
            assert not verdict.ok
            self.streak += 1
            wait = accounts.wait_after(self.streak)
            assert verdict.changes["locked_until"] == (self.now + wait if wait else None)
        self.account.update(verdict.changes)

    @invariant()
    def failures_are_the_streak(self):
        assert self.account["failures"] == self.streak

    @invariant()
    def never_locked_beyond_the_lock_period(self):
        if self.account["locked_until"] is not None:
            assert self.account["locked_until"] - self.now <= accounts.LOCK_FOR


LoginMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
TestLoginMachine = LoginMachine.TestCase


# -- identity_flows.login -------------------------------------------------------------------------

SIGNER_PEM, JWK = tokens.new_signing_key()
SIGNER = tokens.Signer.from_pem(SIGNER_PEM)
ISSUED = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)  # PyJWT checks iat


def test_login_issues_a_token_naming_the_person_and_role(plain):
    repository = FakeAccounts({"sh-xh-mg": account(failures=2)})
    session = identity_flows.login(repository, CHART, SIGNER, "sh-xh-mg", PASSWORD, ISSUED, 3600)
    assert session["staff"] == {"staff_id": "sh-xh-mg", "name": "张丽", "role": "store_manager"}
    assert session["token_type"] == "Bearer" and session["expires_at"] == ISSUED + timedelta(hours=1)
    claims = tokens.KeyRing({"keys": [JWK]}).verify(session["token"], ISSUED)
    assert (claims["sub"], claims["role"]) == ("sh-xh-mg", "store_manager")
    assert repository.accounts["sh-xh-mg"]["failures"] == 0
    assert repository.accounts["sh-xh-mg"]["last_login_at"] == ISSUED


def test_a_failed_login_is_recorded_and_refused(plain):
    repository = FakeAccounts({"sh-xh-mg": account(failures=3)})
    with pytest.raises(identity_flows.LoginRefused) as refused:
        identity_flows.login(repository, CHART, SIGNER, "sh-xh-mg", "wrong", NOW, 3600)
    assert refused.value.retry_after == 0 and str(refused.value) == "wrong staff id or password"
    assert repository.accounts["sh-xh-mg"]["failures"] == 4
    with pytest.raises(identity_flows.LoginRefused) as refused:   # within the 1 s wait
        identity_flows.login(repository, CHART, SIGNER, "sh-xh-mg", PASSWORD, NOW, 3600)
    assert refused.value.retry_after == 1 and str(refused.value) == "account locked"


@pytest.mark.parametrize("staff_id", ["nobody", "sh-xh-s1"])
def test_unknown_people_and_people_without_an_account_cost_a_hash_and_fail_alike(plain, staff_id):
    repository = FakeAccounts({"sh-xh-mg": account()})
    with pytest.raises(identity_flows.LoginRefused) as refused:
        identity_flows.login(repository, CHART, SIGNER, staff_id, PASSWORD, NOW, 3600)
    assert str(refused.value) == "wrong staff id or password"
    assert plain.verified == ["plain$the dummy"]


def test_a_deactivated_person_cannot_log_in_even_with_the_right_password(plain):
    from services.routing import organisation
    chart = organisation.deactivate_staff(CHART, "sh-xh-s1")
    repository = FakeAccounts({"sh-xh-s1": account()})
    with pytest.raises(identity_flows.LoginRefused):
        identity_flows.login(repository, chart, SIGNER, "sh-xh-s1", PASSWORD, NOW, 3600)
    assert plain.verified == ["plain$the dummy"]           # their own hash was not even tried
    assert repository.accounts["sh-xh-s1"]["failures"] == 0


def test_set_password_for_active_people_only(plain):
    repository = FakeAccounts()
    identity_flows.set_password(repository, CHART, "sh-xh-mg", "a long new password", NOW)
    assert repository.accounts["sh-xh-mg"]["password_hash"] == "plain$a long new password"
    with pytest.raises(ValueError):
        identity_flows.set_password(repository, CHART, "sh-xh-mg", "short", NOW)
    with pytest.raises(KeyError):
        identity_flows.set_password(repository, CHART, "nobody", "a long new password", NOW)
