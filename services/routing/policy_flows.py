"""SLA policy use cases over the PolicyRepository: list, read, create, change (a new
version) and deactivate, each validated by services/routing/policy.py. A change never
touches running cases: they keep the clock specs (and policy id and version) they
were armed with."""
import logging

from closeloop_shared.cache import TimedCache
from services.routing.policy import SlaPolicy, validate

log = logging.getLogger(__name__)


class PolicyNotFound(Exception):
    pass


class PolicyConflict(Exception):
    """The request does not fit the policy's state (HTTP 409): `code` says why."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


_ACTIVE = TimedCache()  # (collection, "active") -> the stored policies in force


def active_policies(repository, cache_seconds=0):
    """The stored policies in force, for policy.choose (with the built-in defaults);
    read again after `cache_seconds` (a change through this process: at once)."""
    def load():
        return tuple(SlaPolicy.from_doc(doc) for doc in repository.active())
    return _ACTIVE.get((repository.cache_key, "active"), load, cache_seconds)


def _stored(policy, actor, now):
    return dict(policy.to_doc(), updated_at=now, updated_by=actor)


def view(doc_or_policy):
    """A policy as the API shows it: the policy's fields, and when and by whom it was
    last changed for a stored one."""
    if isinstance(doc_or_policy, SlaPolicy):
        return doc_or_policy.to_doc()
    return {**SlaPolicy.from_doc(doc_or_policy).to_doc(),
            "updated_at": doc_or_policy.get("updated_at"), "updated_by": doc_or_policy.get("updated_by")}


def list_policies(repository, builtins):
    """The built-in defaults (read-only; set by config) then the stored policies."""
    return [view(p) for p in builtins] + [view(doc) for doc in repository.all()]


def get_policy(repository, builtins, policy_id):
    builtin = next((p for p in builtins if p.policy_id == policy_id), None)
    if builtin:
        return view(builtin)
    doc = repository.get(policy_id)
    if doc is None:
        raise PolicyNotFound(policy_id)
    return view(doc)


def _refuse_builtin(builtins, policy_id):
    if any(p.policy_id == policy_id for p in builtins):
        raise PolicyConflict("builtin_policy", f"{policy_id} is built in: its clocks come from the "
                             "SLA_* config keys; add a policy of your own to differ from it")


def create(repository, builtins, body, actor, now):
    """A new policy (version 1, active) from a schema-validated body."""
    _refuse_builtin(builtins, body["policy_id"])
    policy = validate(SlaPolicy.from_doc(dict(body, version=1, active=True, builtin=False)))
    doc = _stored(policy, actor, now)
    if not repository.insert(doc):
        raise PolicyConflict("policy_exists", f"a policy {policy.policy_id} exists; change it with PUT")
    _ACTIVE.forget(repository.cache_key)
    log.info("SLA policy created", extra={"policy_id": policy.policy_id, "by": actor})
    return view(doc)


def _next_version(repository, policy_id, expected_version, change, actor, now):
    current = repository.get(policy_id)
    if current is None:
        raise PolicyNotFound(policy_id)
    if expected_version is not None and expected_version != current["version"]:
        raise PolicyConflict("version_conflict", f"policy {policy_id} is at version {current['version']}, "
                             f"not {expected_version}: read it again and redo the change")
    policy = validate(change(SlaPolicy.from_doc(current)))
    stored = repository.replace(current, _stored(policy, actor, now))
    _ACTIVE.forget(repository.cache_key)
    if stored is None:
        raise PolicyConflict("version_conflict", f"policy {policy_id} changed meanwhile: read it again")
    log.info("SLA policy changed", extra={"policy_id": policy_id, "version": policy.version,
                                          "active": policy.active, "by": actor})
    return view(stored)


def update(repository, builtins, policy_id, body, actor, now):
    """The next version of a policy from a body holding the version it replaces and the
    whole new definition; the policy is in force again if it had been deactivated."""
    _refuse_builtin(builtins, policy_id)
    return _next_version(repository, policy_id, body["version"], lambda current: SlaPolicy.from_doc(dict(
        body, policy_id=policy_id, version=current.version + 1, active=True, builtin=False)), actor, now)


def deactivate(repository, builtins, policy_id, expected_version, actor, now):
    """No new case gets this policy (a new version, inactive); cases that have it keep it."""
    _refuse_builtin(builtins, policy_id)

    def change(current):
        if not current.active:
            raise PolicyConflict("already_inactive", f"policy {policy_id} is not in force")
        return SlaPolicy.from_doc(dict(current.to_doc(), version=current.version + 1, active=False))
    return _next_version(repository, policy_id, expected_version, change, actor, now)
