"""The staff console's rules, words and edge, without any service running: countdowns
and the queue order, who is offered which action, the remedy approval path, masking,
the dashboard's open-case figures, the wording of every error, the access rule of every
route, and the small pieces of the session and CSRF handling."""
import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from closeloop_shared.config import DEFAULTS, REMEDY_APPROVAL_LIMITS_FEN
from closeloop_shared.contract import (
    AppointmentStatus, CaseAction, CaseStatus, Category, Channel, ClockName, CustomerTier, Permission,
    RefundOption, RemedyStatus, RemedyType, RevisitPurpose, Role, RootCause, Severity)
from services.console import domain, flows, i18n
from services.console.api import ApiError, ServicesApi
from services.console.domain import ClockState, Person
from services.console.web import safe_next, token_claims

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
LIMITS = DEFAULTS[REMEDY_APPROVAL_LIMITS_FEN]


def clock(due_in, warn_lead=timedelta(hours=2), **state):
    due = NOW + due_in
    return {"due_at": due.isoformat(), "warn_at": (due - warn_lead).isoformat(), "met_at": None,
            "breached_at": None, "paused_at": None, "stopped_at": None, **state}


def case(case_id="c1", status="assigned", severity="medium", submitted="2026-11-25T08:00:00+00:00", **clocks):
    return {"case_id": case_id, "status": status, "severity": severity, "submitted_at": submitted,
            "clocks": clocks, "allowed_actions": [], "remedies": [], "timeline": []}


def person(role, staff_id="me", store="SH-XH-001"):
    return Person(staff_id, "某人", Role(role), store_id=store)


# -- countdowns and the queue ------------------------------------------------------------

def test_a_clock_is_running_warning_breached_paused_or_met():
    assert domain.countdown("resolution", clock(timedelta(hours=5)), NOW).state is ClockState.RUNNING
    assert domain.countdown("resolution", clock(timedelta(hours=1)), NOW).state is ClockState.WARNING
    late = domain.countdown("resolution", clock(-timedelta(minutes=35)), NOW)
    assert late.state is ClockState.BREACHED and late.remaining_seconds == -35 * 60
    flagged = clock(timedelta(hours=5), breached_at=NOW.isoformat())  # routing said so: believed
    assert domain.countdown("first_response", flagged, NOW).state is ClockState.BREACHED
    paused_an_hour_ago = clock(timedelta(hours=5), paused_at=(NOW - timedelta(hours=1)).isoformat())
    paused = domain.countdown("resolution", paused_an_hour_ago, NOW)
    assert paused.state is ClockState.PAUSED and paused.remaining_seconds == 6 * 3600  # frozen when paused
    met = domain.countdown("first_response", clock(timedelta(hours=5), met_at=NOW.isoformat()), NOW)
    assert met.state is ClockState.MET and not met.running


def test_the_queue_puts_the_clock_that_breaks_first_on_top():
    soon = case("soon", first_response=clock(timedelta(hours=1)), resolution=clock(timedelta(days=2)))
    breached = case("breached", severity="low", resolution=clock(-timedelta(minutes=5)))
    later = case("later", severity="critical", first_response=clock(timedelta(hours=3)))
    paused = case("paused", status="pending_customer",
                  resolution=clock(timedelta(minutes=1), paused_at=NOW.isoformat()))
    resolved = case("done", status="resolved", resolution=clock(timedelta(hours=1), met_at=NOW.isoformat()))
    ordered = [c["case_id"] for c in domain.queue_order([resolved, paused, later, soon, breached], NOW)]
    assert ordered == ["breached", "soon", "later", "paused", "done"]


def test_equal_clocks_are_ordered_by_severity_then_age():
    same = clock(timedelta(hours=3))
    a = case("medium-old", severity="medium", submitted="2026-11-25T07:00:00+00:00", resolution=same)
    b = case("high", severity="high", resolution=same)
    c = case("medium-new", severity="medium", submitted="2026-11-25T09:00:00+00:00", resolution=same)
    assert [x["case_id"] for x in domain.queue_order([c, a, b], NOW)] == ["high", "medium-old", "medium-new"]


def test_countdowns_read_the_way_people_say_them():
    assert domain.format_remaining(2 * 3600 + 15 * 60, "zh-CN") == "2小时15分"
    assert domain.format_remaining(-35 * 60, "zh-CN") == "已超时35分"
    assert domain.format_remaining(26 * 3600, "en") == "1 d 2 h"
    assert domain.format_remaining(30, "en") == "<1 min"


# -- who is offered what ------------------------------------------------------------------

ALL_WORKING = [a.value for a in CaseAction]


def test_staff_are_offered_only_what_their_role_and_the_case_status_allow():
    working = dict(case(status="investigating"), allowed_actions=ALL_WORKING)
    staff = domain.actions_for(working, person("store_staff"))
    assert CaseAction.ACKNOWLEDGE in staff and CaseAction.PROPOSE_REMEDY in staff and CaseAction.RESOLVE in staff
    for refused in (CaseAction.CLOSE, CaseAction.REOPEN, CaseAction.ARCHIVE, CaseAction.APPROVE_REMEDY,
                    CaseAction.SIGN_OFF_REPORT, CaseAction.FILE_REPORT):
        assert refused not in staff
    manager = domain.actions_for(working, person("store_manager"))
    assert CaseAction.CLOSE in manager and CaseAction.ARCHIVE in manager
    assert CaseAction.RESUME not in manager  # only a case waiting on the customer resumes
    assert domain.actions_for(dict(working, allowed_actions=["note"]), person("store_manager")) == [CaseAction.NOTE]
    assert domain.actions_for(working, person("admin")) == []  # operations read, never act
    taken = dict(working, ladder={"acknowledged_at": "2026-11-25T09:00:00+00:00"})
    assert CaseAction.ACKNOWLEDGE not in domain.actions_for(taken, person("store_staff"))


def test_a_pending_remedy_is_offered_to_its_approver_alone_and_blocks_another_proposal():
    pending = {"remedy_id": "r1", "status": RemedyStatus.PENDING_APPROVAL.value, "type": "compensation",
               "amount_fen": 80_000, "approver": {"staff_id": "rm-east", "role": "regional_manager"}}
    waiting = dict(case(status="investigating"), allowed_actions=ALL_WORKING, remedies=[pending])
    regional = person("regional_manager", "rm-east", store=None)
    assert CaseAction.APPROVE_REMEDY in domain.actions_for(waiting, regional)
    assert domain.awaiting(waiting, regional) == [pending]
    assert CaseAction.APPROVE_REMEDY not in domain.actions_for(waiting, person("store_manager", "sh-xh-mg"))
    assert CaseAction.PROPOSE_REMEDY not in domain.actions_for(waiting, person("store_staff"))


def test_referral_report_actions_appear_only_on_referrals():
    referral = dict(case(status="investigating"), allowed_actions=ALL_WORKING, referral={"authority": "12315"})
    assert CaseAction.FILE_REPORT in domain.actions_for(referral, person("store_manager"))
    assert CaseAction.SIGN_OFF_REPORT in domain.actions_for(referral, person("general_manager", store=None))


def test_every_offered_action_names_the_permission_routing_checks():
    assert set(domain.OFFERED) <= set(domain.ACTION_PERMISSION)
    assert domain.ACTION_PERMISSION[CaseAction.APPROVE_REMEDY] is Permission.CASE_REMEDY_APPROVE


def test_the_remedy_form_says_who_approves_before_it_is_sent():
    staff, manager = person("store_staff"), person("store_manager")
    assert domain.approver_for(0, "apology", staff, LIMITS) is None
    assert domain.approver_for(30_000, "voucher", staff, LIMITS) is Role.STORE_MANAGER
    assert domain.approver_for(30_000, "voucher", manager, LIMITS) is None       # within ¥500
    assert domain.approver_for(80_000, "compensation", staff, LIMITS) is Role.REGIONAL_MANAGER
    assert domain.approver_for(80_000, "compensation", manager, LIMITS) is Role.REGIONAL_MANAGER
    assert domain.approver_for(500_000, "refund", manager, LIMITS) is Role.GENERAL_MANAGER
    assert domain.approver_for(10**8, "refund", person("general_manager", store=None), LIMITS) is None


@pytest.mark.parametrize("text, fen", [("800", 80_000), ("1,200.5", 120_050), ("¥0.05", 5), ("", 0),
                                       (" 300元 ", 30_000)])
def test_amounts_in_yuan_become_integer_fen(text, fen):
    assert domain.yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", ["abc", "1.234", "-5", "1e3", "12.3.4"])
def test_anything_else_is_not_an_amount(text):
    with pytest.raises(ValueError):
        domain.yuan_to_fen(text)


def test_remedy_forms_become_the_routing_body():
    assert flows.remedy_body({"type": "compensation", "amount": "800", "note": "交通费"}) == {
        "type": "compensation", "amount_fen": 80_000, "note": "交通费"}
    assert flows.remedy_body({"type": "apology", "amount": "999"})["amount_fen"] == 0
    with pytest.raises(flows.FormRefused) as refused:
        flows.remedy_body({"type": "refund", "amount": "300"})
    assert refused.value.text_key == "refund_needs_option"
    assert flows.remedy_body({"type": "refund", "amount": "300", "refund_option": "partial_continue"})[
        "refund_option"] == "partial_continue"
    with pytest.raises(flows.FormRefused):
        flows.remedy_body({"type": "voucher", "amount": "三百"})


def test_no_form_carries_an_actor_and_empty_notes_are_refused_in_words():
    body = flows.action_body(CaseAction.RESPOND, {"note": " 已致歉 ", "actor": "gm-001"}, person("store_staff"))
    assert body == {"note": "已致歉"}
    with pytest.raises(ApiError) as empty:
        flows.action_body(CaseAction.RESPOND, {"note": "  "}, person("store_staff"))
    assert "说明 必须填写" in i18n.explain(empty.value.code, "zh-CN", empty.value.fields)
    assert flows.action_body(CaseAction.ACKNOWLEDGE, {"note": "x"}, person("store_staff")) == {}


def test_a_root_cause_carries_its_improvement_owned_by_the_person_unless_chosen():
    supervisor = person("supervisor", "sh-xh-sv")
    assert flows.action_body(CaseAction.ROOT_CAUSE, {"cause": "misunderstanding"}, supervisor) == {
        "cause": "misunderstanding", "note": "", "actions": []}
    body = flows.action_body(CaseAction.ROOT_CAUSE, {"cause": "poor_communication", "action_text": "前台复述预约",
                                                     "action_due": "2026-12-01"}, supervisor)
    assert body["actions"] == [{"text": "前台复述预约", "owner": "sh-xh-sv", "due": "2026-12-01"}]
    with pytest.raises(ApiError):  # an improvement needs its date
        flows.action_body(CaseAction.ROOT_CAUSE, {"cause": "poor_communication", "action_text": "x"}, supervisor)


# -- masking and figures ------------------------------------------------------------------

def test_the_queue_masks_every_customer_whoever_looks():
    assert domain.masked_customer({"name": "刘女士", "phone": "+8613812345678"}) == {
        "name": "刘**", "phone": "138****5678"}
    assert domain.masked_customer({"name": "Alice Wong", "phone": None})["name"] == "A****"
    assert domain.masked_customer(None) == {"name": "", "phone": ""}


def test_open_breaches_and_cases_at_risk_are_counted_from_the_open_cases():
    cases = [case("late", resolution=clock(-timedelta(hours=1))),
             case("risk", first_response=clock(timedelta(hours=3))),
             case("fine", first_response=clock(timedelta(hours=20))),
             case("done", status="closed", resolution=clock(-timedelta(hours=1)))]
    assert domain.open_case_figures(cases, NOW) == domain.OpenCaseFigures(open_cases=3, breached_open=1, at_risk=1)


def test_the_escalation_inbox_holds_cases_that_climbed_to_the_person():
    climbed = dict(case(), rung=2, ladder={"people": ["sh-xh-mg"]}, timeline=[{"action": "escalated"}])
    assert domain.escalated_to(climbed, person("store_manager", "sh-xh-mg"))
    assert not domain.escalated_to(climbed, person("supervisor", "sh-xh-sv"))
    assert not domain.escalated_to(dict(climbed, timeline=[]), person("store_manager", "sh-xh-mg"))


# -- words --------------------------------------------------------------------------------

@pytest.mark.parametrize("vocabulary", [CaseStatus, Category, Severity, Channel, ClockName, Role, RemedyType,
                                        RefundOption, RemedyStatus, CaseAction, RootCause, CustomerTier,
                                        RevisitPurpose, AppointmentStatus])
def test_every_value_of_the_contract_has_a_label_in_both_languages(vocabulary):
    for member in vocabulary:
        zh, en = i18n.label(member, "zh-CN"), i18n.label(member.value, "en")
        assert zh and en and zh != member.value, member


def test_every_error_code_the_services_answer_is_told_in_words():
    codes = ["unauthenticated", "invalid_credentials", "account_locked", "forbidden", "case_not_found",
             "invalid_transition", "concurrent_update", "above_approval_limit", "own_proposal", "below_rung",
             "remedy_pending", "remedy_not_approved", "validation_failed", "already_recorded", "rate_limited",
             "storage_unavailable", "internal_error", "service_unreachable", "report_required"]
    for code in codes:
        for lang in i18n.LANGUAGES:
            words = i18n.explain(code, lang, {"amount_fen": ["Must be greater than or equal to 0."]}, "30")
            assert code not in words and "{" not in words, (code, lang, words)
    assert "30 秒" in i18n.explain("account_locked", "zh-CN", retry_after="30")
    assert "金额" in i18n.explain("validation_failed", "zh-CN", {"amount_fen": ["Not a valid integer."]})
    assert i18n.explain("something_new", "en") == "That did not work; please try again."


def test_every_text_exists_in_both_languages():
    for key, pair in i18n.TEXTS.items():
        assert len(pair) == 2 and all(pair), key
    assert i18n.language("fr") == "zh-CN" and i18n.language("en") == "en"


# -- the edge -----------------------------------------------------------------------------

def test_only_the_login_and_operational_routes_are_public_and_case_actions_need_routings_permission():
    from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
    from services.console.service import ConsoleService
    routes = {}
    for name in dir(ConsoleService):
        for entrypoint in getattr(getattr(ConsoleService, name), ENTRYPOINT_EXTENSIONS_ATTR, ()):
            routes[(entrypoint.method, entrypoint.url)] = entrypoint.access
    public = {route for route, access in routes.items() if access.public}
    assert public == {("GET", "/health"), ("GET", "/health/live"), ("GET", "/health/ready"),
                      ("GET", "/static/<string:name>"), ("GET", "/login"), ("POST", "/login"),
                      ("POST", "/logout"), ("GET", "/language"), ("GET", "/")}
    for action in domain.OFFERED:
        access = routes[("POST", f"/cases/<string:case_id>/{action.value}")]
        assert access.permission is domain.ACTION_PERMISSION[action], action
    assert routes[("GET", "/dashboard")].permission is Permission.REPORT_READ
    assert routes[("POST", "/cases/<string:case_id>/reassign")].permission is Permission.CASE_REASSIGN
    assert routes[("POST", "/revisits/<string:revisit_id>/outcome")].permission is Permission.REVISIT_RECORD


@pytest.mark.parametrize("target, expected", [("/cases/abc?x=1", "/cases/abc?x=1"), ("//evil.example", "/queue"),
                                              ("https://evil.example", "/queue"), ("/\\evil", "/queue"),
                                              ("/\t/evil.example", "/queue"), ("/\n/evil.example", "/queue"),
                                              (None, "/queue")])
def test_after_logging_in_one_goes_back_only_within_the_console(target, expected):
    assert safe_next(target) == expected


def test_a_token_is_read_for_its_expiry_and_garbage_is_no_session():
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "sh-xh-s1", "exp": 123}).encode()).rstrip(b"=").decode()
    assert token_claims(f"head.{payload}.signature") == {"sub": "sh-xh-s1", "exp": 123}
    assert token_claims("not-a-token") is None and token_claims("a.!!!.c") is None


class FakeSession:
    def __init__(self, response=None, error=None):
        self.response, self.error, self.calls = response, error, []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        if self.error:
            raise self.error
        return self.response


def answer(status, body, headers=None):
    response = requests.models.Response()
    response.status_code, response._content = status, json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


def test_the_api_port_sends_the_persons_token_and_reads_the_services_errors():
    session = FakeSession(answer(409, {"error": {"code": "invalid_transition", "message": "no",
                                                 "allowed_actions": ["note"]}}))
    api = ServicesApi(session, {"routing": "http://routing"}, 5).as_person("tok")
    with pytest.raises(ApiError) as refused:
        api.act("c1", "resolve", {"note": "x"})
    assert refused.value.code == "invalid_transition" and refused.value.allowed_actions == ["note"]
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("POST", "http://routing/v1/cases/c1/resolve")
    assert kwargs["headers"]["Authorization"] == "Bearer tok"
    with pytest.raises(ApiError) as walked:
        api.case("../v1/org")
    assert walked.value.status == 404 and len(session.calls) == 1  # never sent


def test_a_service_that_does_not_answer_is_an_error_in_words_not_a_crash():
    api = ServicesApi(FakeSession(error=requests.ConnectionError("refused")), {"routing": "http://routing"}, 5)
    with pytest.raises(ApiError) as unreachable:
        api.login("sh-xh-s1", "pw")
    assert unreachable.value.code == "service_unreachable"
    assert "没有保存" in i18n.explain(unreachable.value.code, "zh-CN")


# -- the pages with data in them (the service tests see most of them empty) ------------------

def render_page(template, who="store_manager", lang="zh-CN", **values):
    from services.console.web import render
    return render(template, lang, person(who, "sh-xh-mg"), csrf="c", flash=None, fragment=False, path="/x",
                  full_path="/x", poll=15, domain=domain, flows=flows, i18n=i18n, server_time=0,
                  who=lambda staff_id: {"sh-xh-s1": "王小雨"}.get(staff_id, staff_id), **values)


def test_todays_revisits_show_the_script_and_the_outcome_form():
    task = {"task_id": "t1", "customer": {"name": "刘女士", "phone": "+8613812345678"}, "purpose": "care",
            "tier": "key", "due_at": "2026-11-25T02:00:00+00:00", "attempts": [{"reached": False}],
            "script_text": "刘女士您好,我是上海徐汇店的赵敏……"}
    html = render_page("revisits.html", tasks=[task], case_revisits=[], now=NOW)
    assert "客户关怀" in html and "重点客户" in html and "我是上海徐汇店的赵敏" in html
    assert 'action="/revisit-tasks/t1/attempts"' in html and "11-25 10:00" in html  # China time
    assert "Care" in render_page("revisits.html", lang="en", tasks=[task], case_revisits=[], now=NOW)


def test_todays_calls_include_the_satisfaction_revisits_of_resolved_cases_due_by_tonight():
    class Api:
        def revisit_tasks_due_today(self):
            return []

        def cases(self, status=None, limit=None):
            assert status == "resolved"
            return [{"case_id": "c1", "case_number": "CL-1"}, {"case_id": "c2", "case_number": "CL-2"}]

        def revisits(self, case_id):
            due = {"c1": "2026-11-25T15:00:00+00:00",   # 23:00 in China: tonight
                   "c2": "2026-11-25T16:30:00+00:00"}[case_id]  # 00:30 tomorrow in China
            return [{"revisit_id": f"r-{case_id}", "case_id": case_id, "status": "scheduled", "due_at": due,
                     "customer": {"name": "刘女士", "phone": "+8613812345678"}}]
    found = flows.revisits_today(Api(), NOW)
    assert [r["revisit_id"] for r in found["case_revisits"]] == ["r-c1"]
    html = render_page("revisits.html", now=NOW, **found)
    assert 'action="/revisits/r-c1/outcome"' in html and "CL-1" in html


def test_the_dashboard_and_the_digest_show_their_figures():
    summary = {"cases": 12, "by_category": {"booking": 7, "hygiene": 5},
               "first_response": {"rate": 0.9166}, "resolution": {"rate": None},
               "satisfaction": {"rate": 1.0, "target": 0.95}}
    kpis = {"from": "2026-11-19", "to": "2026-11-26", "groups": {"all": {
        "repeat": {"30": {"cases": 2, "rate": 0.1667}},
        "root_causes": [{"root_cause": "poor_communication", "cases": 3, "share": 0.75, "cumulative": 0.75}]}}}
    html = render_page("dashboard.html", summary=summary, kpis=kpis, store="SH-XH-001",
                       stores={"SH-XH-001": "上海徐汇店", "HZ-XH-002": "杭州西湖店"},
                       figures=domain.OpenCaseFigures(5, 1, 2))
    assert "91.7%" in html and "100%" in html and "—" in html and "沟通不良" in html and "预约" in html
    assert 'id="kpi-breached">1<' in html and 'id="kpi-at-risk">2<' in html
    assert "上海徐汇店" in html and "杭州西湖店" in html  # the regional manager picks a store
    digest = {"week": {"from": "2026-11-16", "to": "2026-11-22"},
              "categories": {"booking": {"cases": 4, "on_time": {"resolution": {"rate": 0.5}}}},
              "pareto_by_store": {"SH-XH-001": kpis["groups"]["all"]["root_causes"]},
              "week_over_week": {k: {"now": 0.5, "before": 0.25, "change": 0.25} for k in
                                 ("first_response_rate", "resolution_rate", "satisfaction_rate", "repeat_30_rate")}
              | {"cases": {"now": 4, "before": 2, "change": 2}}}
    html = render_page("digest.html", digest=digest)
    assert "2026-11-16" in html and "50%" in html and "沟通不良" in html
    assert "/digest?week=2026-11-09" in html and "/digest?week=2026-11-23" in html


def test_a_case_waiting_for_approval_shows_the_approver_and_names_the_proposer():
    pending = {"remedy_id": "r1", "status": "pending_approval", "type": "compensation", "refund_option": None,
               "amount_fen": 80_000, "round": 1, "proposed_by": "sh-xh-s1", "flags": ["repeat_customer"],
               "approver": {"staff_id": "sh-xh-mg", "name": "张丽", "role": "store_manager"}}
    the_case = dict(case(status="investigating", resolution=clock(timedelta(hours=3))), case_number="CL-1",
                    allowed_actions=ALL_WORKING, remedies=[pending], customer={"name": "刘女士", "phone": "+86138"},
                    content="x", store_name="上海徐汇店", assignee=None, referral=None, updated_at="u",
                    category="booking", channel="hotline",
                    timeline=[{"seq": 1, "at": "2026-11-25T09:00:00+00:00", "action": "remedy_proposed",
                               "actor": "sh-xh-s1"}])
    view = flows.case_page(type("Api", (), {"case": lambda self, _: the_case, "revisits": lambda self, _: []})(),
                           person("store_manager", "sh-xh-mg"), "c1", NOW, lambda: LIMITS)
    html = render_page("case.html", now=NOW, root_causes=list(RootCause), people={"sh-xh-mg": "张丽"},
                       today="2026-11-25", **view)
    assert "等待 张丽(店长)审批" in html and 'id="do-approve"' in html and "王小雨" in html
    assert "多次获得赔偿" in html and 'id="do-propose"' not in html
    assert "沟通不良" in html and "id=\"do-root-cause\"" in html
    assert 'id="do-reassign"' in html  # a manager hands an open case over


# -- settings: from the container's config, defaults in closeloop_shared/config.py -------------

def test_the_console_reads_its_settings_from_nameko_yml_with_the_shared_defaults(monkeypatch):
    from functools import partial

    import yaml
    from nameko.cli.main import IMPLICIT_ENV_VAR_MATCHER, env_var_constructor
    from closeloop_shared.config import CONSOLE_POLL_SECONDS
    from services.console import settings
    from tests.fixtures import ROOT

    class Loader(yaml.SafeLoader):
        """nameko's ${VAR:default} substitution on a loader of its own (registering it on
        yaml.SafeLoader would change how other tests read docker-compose.yml)."""
    Loader.add_constructor("!env_var", env_var_constructor)
    Loader.add_constructor("!raw_env_var", partial(env_var_constructor, raw=True))
    Loader.add_implicit_resolver("!env_var", IMPLICIT_ENV_VAR_MATCHER, None)

    def deployed():
        return settings.from_config(yaml.load((ROOT / "deploy" / "nameko.yml").read_text(encoding="utf-8"),
                                              Loader=Loader))
    for key in (*settings.SERVICE_URLS.values(), "CONSOLE_API_TIMEOUT_SECONDS", "CONSOLE_SECURE_COOKIES",
                "CONSOLE_POLL_SECONDS"):
        monkeypatch.delenv(key, raising=False)
    default = deployed()
    assert default == settings.from_config({})
    assert default.urls["routing"] == "http://127.0.0.1:8010" and default.poll_seconds == DEFAULTS[CONSOLE_POLL_SECONDS]
    assert default.timeout == 8.0 and default.secure_cookies is False
    monkeypatch.setenv("CONSOLE_ROUTING_URL", "http://routing:8000/")
    monkeypatch.setenv("CONSOLE_SECURE_COOKIES", "true")
    monkeypatch.setenv("CONSOLE_POLL_SECONDS", "3")
    compose = deployed()
    assert compose.urls["routing"] == "http://routing:8000" and compose.urls["intake"] == "http://127.0.0.1:8001"
    assert compose.secure_cookies is True and compose.poll_seconds == 3


# -- the approval limits: routing's, read over HTTP and kept a minute ------------------------

def test_the_remedy_form_previews_the_path_with_routings_limits_asked_only_when_it_is_shown():
    the_case = dict(case(status="investigating", resolution=clock(timedelta(hours=3))), case_number="CL-1",
                    allowed_actions=ALL_WORKING, customer={"name": "刘女士", "phone": "+86138"}, content="x",
                    store_name="上海徐汇店", assignee=None, referral=None, updated_at="u", category="booking",
                    channel="hotline")
    api = type("Api", (), {"case": lambda self, _: the_case, "revisits": lambda self, _: []})()
    asked = []
    deployed = {"store_manager": 100_000, "regional_manager": 300_000, "general_manager": None}

    def limits():
        asked.append(1)
        return deployed
    view = flows.case_page(api, person("store_staff", "sh-xh-s1"), "c1", NOW, limits)
    assert view["limits"] == deployed and view["own_limit"] == 0 and asked == [1]
    html = render_page("case.html", who="store_staff", now=NOW, root_causes=list(RootCause), people={},
                       today="2026-11-25", **view)
    assert "1,000.00" in html and "3,000.00" in html and 'id="do-propose"' in html  # routing's, not the defaults
    admin = Person("ops-admin", "运维", Role.ADMIN)
    assert flows.case_page(api, admin, "c1", NOW, limits)["limits"] == {} and asked == [1]  # no form: not asked


def test_the_console_asks_routing_for_the_limits_at_most_once_a_minute(monkeypatch):
    from services.console import web
    session = FakeSession(answer(200, {"limits_fen": {"store_manager": 100_000, "general_manager": None}}))
    client = web.ConsoleClient()
    client._approval_limits = (None, 0.0)
    api = ServicesApi(session, {"routing": "http://routing"}, 5).as_person("tok")
    clock_now = [1000.0]
    monkeypatch.setattr(web.time, "monotonic", lambda: clock_now[0])
    assert client.approval_limits(api) == {"store_manager": 100_000, "general_manager": None}
    clock_now[0] += web.APPROVAL_LIMITS_CACHE_SECONDS - 1
    client.approval_limits(api)
    assert [(m, u) for m, u, _ in session.calls] == [("GET", "http://routing/v1/remedies/approval-limits")]
    assert session.calls[0][2]["headers"]["Authorization"] == "Bearer tok"
    clock_now[0] += 2
    client.approval_limits(api)
    assert len(session.calls) == 2


# -- the day's appointments on the today page -------------------------------------------------

class AppointmentsApi:
    def __init__(self):
        self.asked = []

    def revisit_tasks_due_today(self):
        return []

    def cases(self, status=None, limit=None):
        return []

    def appointments(self, store_id=None, day=None):
        self.asked.append((store_id, day))
        booked = {"appointment_id": "A-1", "store_id": store_id, "starts_at": "2026-11-25T06:30:00+00:00",
                  "service_item": "补水面部护理", "status": "booked", "reminder_sent": True, "reminder_at": None,
                  "customer": {"name": "刘女士", "phone": "+8613812345678", "email": "liu@example.com"}}
        missed = dict(booked, appointment_id="A-2", starts_at="2026-11-25T02:00:00+00:00", status="no_show",
                      reminder_sent=False, service_item="肩颈放松",
                      customer={"name": "王先生", "phone": "+8613900001111"})
        planned = dict(booked, appointment_id="A-3", starts_at="2026-11-25T09:00:00+00:00", reminder_sent=False,
                       reminder_at="2026-11-25T02:00:00+00:00",
                       change_requested_to="2026-11-26T07:00:00+00:00")
        return {"store_id": store_id, "day": day or "2026-11-25", "timezone": "Asia/Shanghai",
                "appointments": [missed, booked, planned]}


def test_the_today_page_lists_the_stores_appointments_with_the_customer_masked():
    api = AppointmentsApi()
    found = flows.revisits_today(api, NOW, "SH-XH-001")
    assert api.asked == [("SH-XH-001", None)]
    rows = found["appointments"]["rows"]
    assert [r.starts_at.strftime("%H:%M") for r in rows] == ["10:00", "14:30", "17:00"]  # the store's time
    assert rows[0].status is AppointmentStatus.NO_SHOW and rows[1].customer == {"name": "刘**", "phone": "138****5678"}
    html = render_page("revisits.html", now=NOW, stores={"SH-XH-001": "上海徐汇店"}, store="SH-XH-001", **found)
    assert 'data-appointment-id="A-1"' in html and "14:30" in html and "补水面部护理" in html
    assert "刘**" in html and "138****5678" in html and "13812345678" not in html and "liu@example.com" not in html
    assert "未到店" in html and "已提醒" in html and "将于 11-25 10:00 提醒" in html and "顾客要求改到 11-26 15:00" in html
    assert "上海徐汇店" in html and "/revisits?store=SH-XH-001&amp;day=2026-11-24" in html
    english = render_page("revisits.html", lang="en", now=NOW, stores={}, store="SH-XH-001", **found)
    assert "No-show" in english and "Reminded" in english
    assert flows.revisits_today(AppointmentsApi(), NOW, None)["appointments"] is None  # no store: not asked
    empty = dict(found, appointments=dict(found["appointments"], rows=[]))
    assert "这一天没有预约" in render_page("revisits.html", now=NOW, stores={}, store="SH-XH-001", **empty)


def test_the_appointments_shown_are_of_the_persons_own_store_or_one_of_theirs_they_pick():
    stores = {"SH-XH-001": "上海徐汇店", "HZ-XH-002": "杭州西湖店"}
    assert flows.appointment_store(person("store_staff"), {"SH-XH-001": "x"}, "HZ-XH-002") == "SH-XH-001"
    regional = Person("rm-east", "陈立华", Role.REGIONAL_MANAGER, region_id="east")
    assert flows.appointment_store(regional, stores) == "HZ-XH-002"
    assert flows.appointment_store(regional, stores, "SH-XH-001") == "SH-XH-001"
    assert flows.appointment_store(regional, {}) is None
