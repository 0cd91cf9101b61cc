"""The console's words: zh-CN first, English second. Every vocabulary of the contract
(closeloop_shared/contract.py) has a label in both (a unit test checks it), and every
error code the services answer with is told in words a salon employee understands.
Pure: no nameko, no HTTP."""
from closeloop_shared.contract import (
    AppointmentStatus, CaseAction, CaseStatus, Category, Channel, ClockName, CustomerTier, RefundOption,
    RemedyStatus, RemedyType, RevisitPurpose, Role, RootCause, Severity)

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"


def language(value):
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


LABELS = {
    CaseStatus.NEW: ("新建", "New"), CaseStatus.ASSIGNED: ("待接单", "Assigned"),
    CaseStatus.ACKNOWLEDGED: ("已接单", "Acknowledged"), CaseStatus.INVESTIGATING: ("处理中", "Investigating"),
    CaseStatus.PENDING_CUSTOMER: ("等顾客回复", "Waiting for the customer"),
    CaseStatus.RESOLVED: ("已解决", "Resolved"), CaseStatus.CLOSED: ("已关闭", "Closed"),
    CaseStatus.REOPENED: ("已重开", "Reopened"), CaseStatus.ARCHIVED: ("已归档", "Archived"),
    Category.SERVICE_QUALITY: ("服务质量", "Service quality"), Category.HYGIENE: ("卫生", "Hygiene"),
    Category.PRODUCT_EFFICACY: ("产品效果", "Product efficacy"), Category.STAFF_ATTITUDE: ("服务态度", "Staff attitude"),
    Category.PRICE: ("价格收费", "Price"), Category.TECHNICIAN_SKILL: ("技师手法", "Technician skill"),
    Category.EQUIPMENT: ("设备", "Equipment"), Category.BOOKING: ("预约", "Booking"), Category.OTHER: ("其他", "Other"),
    Severity.LOW: ("低", "Low"), Severity.MEDIUM: ("中", "Medium"), Severity.HIGH: ("高", "High"),
    Severity.CRITICAL: ("紧急", "Critical"),
    Channel.IN_STORE: ("到店", "In store"), Channel.HOTLINE: ("热线", "Hotline"), Channel.WEB: ("网站", "Web"),
    Channel.WECHAT: ("微信", "WeChat"), Channel.SURVEY: ("问卷", "Survey"), Channel.EMAIL: ("邮件", "E-mail"),
    Channel.COMMENT_BOX: ("意见箱", "Comment box"), Channel.CONSUMER_ASSOCIATION: ("消协/12315", "Consumer association"),
    Channel.MEDIA: ("媒体", "Media"),
    ClockName.FIRST_RESPONSE: ("首次响应", "First response"), ClockName.UPDATE: ("进展告知", "Update"),
    ClockName.RESOLUTION: ("解决", "Resolution"), ClockName.REPORT: ("书面报告", "Written report"),
    Role.STORE_STAFF: ("门店员工", "Store staff"), Role.SUPERVISOR: ("主管", "Supervisor"),
    Role.STORE_MANAGER: ("店长", "Store manager"), Role.REGIONAL_MANAGER: ("区域经理", "Regional manager"),
    Role.CUSTOMER_SERVICE: ("客服部", "Customer service"), Role.GENERAL_MANAGER: ("总经理", "General manager"),
    Role.ADMIN: ("系统管理员", "Administrator"),
    RemedyType.APOLOGY: ("道歉", "Apology"), RemedyType.VOUCHER: ("代金券", "Voucher"),
    RemedyType.COMPENSATION: ("赔偿", "Compensation"), RemedyType.REFUND: ("退款", "Refund"),
    RefundOption.NONE_CONTINUE: ("A 不退款,继续做", "A no refund, continue"),
    RefundOption.PARTIAL_CONTINUE: ("B 部分退款,继续做", "B partial refund, continue"),
    RefundOption.FULL_CONTINUE: ("C 全额退款,继续做", "C full refund, continue"),
    RefundOption.FULL_STOP: ("D 全额退款,不再做", "D full refund, stop"),
    RemedyStatus.PENDING_APPROVAL: ("待审批", "Waiting for approval"), RemedyStatus.APPROVED: ("已批准", "Approved"),
    RemedyStatus.REJECTED: ("已驳回", "Rejected"),
    CaseAction.ACKNOWLEDGE: ("接单", "Acknowledge"), CaseAction.RESPOND: ("回复顾客", "Respond to the customer"),
    CaseAction.NOTE: ("添加记录", "Add a note"), CaseAction.REPORT_TO_SUPERIOR: ("上报上级", "Report to superior"),
    CaseAction.REQUEST_INFO: ("请顾客补充信息", "Ask the customer for information"),
    CaseAction.RESUME: ("顾客已回复", "The customer answered"), CaseAction.PROPOSE_REMEDY: ("提出处理方案", "Propose a remedy"),
    CaseAction.APPROVE_REMEDY: ("批准方案", "Approve the remedy"), CaseAction.REJECT_REMEDY: ("驳回方案", "Reject the remedy"),
    CaseAction.ROOT_CAUSE: ("记录根本原因", "Record the root cause"), CaseAction.FILE_REPORT: ("提交书面报告", "File the report"),
    CaseAction.SIGN_OFF_REPORT: ("签发书面报告", "Sign off the report"), CaseAction.RESOLVE: ("办结", "Resolve"),
    CaseAction.CLOSE: ("关闭", "Close"), CaseAction.REOPEN: ("重开", "Reopen"), CaseAction.LINK: ("关联", "Link"),
    CaseAction.MERGE: ("合并", "Merge"), CaseAction.ARCHIVE: ("归档", "Archive"),
    RootCause.MISUNDERSTANDING: ("沟通理解不好", "Misunderstanding"),
    RootCause.EXPECTATION_GAP: ("与自我期望值有落差", "Expectation gap"),
    RootCause.HABITUAL_VENTING: ("习惯性情绪发泄", "Habitual venting"),
    RootCause.POLICY_MANAGEMENT: ("政策及管理", "Policy and management"),
    RootCause.POOR_COMMUNICATION: ("沟通不良", "Poor communication"),
    RootCause.UNKEPT_PROMISE: ("无法实现承诺", "Unkept promise"),
    RootCause.WILLING_BUT_UNABLE: ("有心无力", "Willing but unable"),
    RootCause.SERVICE_NOT_IN_PLACE: ("服务不到位", "Service not in place"),
    CustomerTier.KEY: ("重点客户", "Key customer"), CustomerTier.REGULAR: ("普通客户", "Regular customer"),
    CustomerTier.POTENTIAL: ("潜在客户", "Potential customer"), CustomerTier.SPECIAL: ("特殊客户", "Special care"),
    RevisitPurpose.SATISFACTION: ("满意度回访", "Satisfaction"), RevisitPurpose.CARE: ("客户关怀", "Care"),
    RevisitPurpose.SERVICE_REMINDER: ("服务提醒", "Service reminder"), RevisitPurpose.OFFER: ("优惠信息", "Offer"),
    AppointmentStatus.BOOKED: ("已预约", "Booked"), AppointmentStatus.ATTENDED: ("已到店", "Attended"),
    AppointmentStatus.NO_SHOW: ("未到店", "No-show"), AppointmentStatus.CANCELLED: ("已取消", "Cancelled"),
}


def label(value, lang):
    """The label of a contract value (an enum member or its string) in `lang`."""
    if value is None:
        return ""
    for key, (zh, en) in LABELS.items():
        if key is value or key.value == value:
            return en if lang == "en" else zh
    return str(value.value if hasattr(value, "value") else value)


TEXTS = {
    "app_name": ("客诉闭环工作台", "Closeloop console"),
    "queue": ("我的待办", "My queue"), "triage": ("待分类", "Triage"),
    "revisits": ("今日回访与预约", "Today's revisits and appointments"),
    "dashboard": ("门店看板", "Store dashboard"), "escalations": ("升级待办", "Escalations"),
    "digest": ("每周简报", "Weekly digest"), "log_out": ("退出登录", "Log out"), "log_in": ("登录", "Log in"),
    "staff_id": ("工号", "Staff ID"), "password": ("密码", "Password"),
    "switch_language": ("English", "中文"),
    "expired": ("登录已过期,请重新登录。刚才的操作没有提交。", "Your session expired: please log in again. The last action was not sent."),
    "logged_out": ("已退出登录。", "You have logged out."),
    "mine_only": ("只看分配给我的", "Only mine"), "all_store": ("本店全部", "All my stores"),
    "empty_queue": ("没有待处理的投诉,做得好!", "Nothing waiting. Well done!"),
    "case": ("投诉单", "Case"), "customer": ("顾客", "Customer"), "channel": ("渠道", "Channel"),
    "category": ("类别", "Category"), "severity": ("严重程度", "Severity"), "status": ("状态", "Status"),
    "assignee": ("负责人", "Handled by"), "store": ("门店", "Store"), "content": ("顾客反馈", "What the customer said"),
    "clocks": ("时限", "Deadlines"), "timeline": ("处理记录", "Timeline"), "actions": ("可以做的操作", "What you can do"),
    "no_actions": ("您目前无需对这个投诉单操作。", "Nothing for you to do on this case now."),
    "note": ("说明", "Note"), "question": ("要问顾客的问题", "Question for the customer"),
    "answer": ("顾客的回答", "The customer's answer"), "message": ("给上级的说明", "Message for your superior"),
    "reason": ("原因", "Reason"), "summary": ("报告内容", "Report"),
    "remedy": ("处理方案", "Remedy"), "remedy_type": ("方案类型", "Type"), "refund_option": ("退款选项 (A-D)", "Refund option (A-D)"),
    "amount": ("金额 (元)", "Amount (yuan)"), "remedies": ("处理方案记录", "Remedies"),
    "approval_now": ("在您的权限内,提交后立即生效。", "Within your limit: approved as soon as you propose it."),
    "approval_by": ("超出您的审批权限,提交后需 {role} 审批。", "Above your limit: {role} must approve it."),
    "approval_limits": ("审批权限:{limits}", "Approval limits: {limits}"),
    "no_limit": ("不限", "no limit"),
    "waits_for": ("等待 {name}({role})审批", "Waiting for {name} ({role}) to approve"),
    "submit": ("提交", "Submit"), "done": ("已完成:{what}", "Done: {what}"),
    "revisit": ("满意度回访", "Satisfaction revisit"), "score": ("满意度 (1-5)", "Satisfaction (1-5)"),
    "comment": ("顾客评价", "The customer's words"), "record_outcome": ("记录回访结果", "Record the outcome"),
    "revisit_recorded": ("回访已记录", "Revisit recorded"),
    "no_revisits": ("今天没有需要回访的顾客。", "No revisits due today."),
    "reached": ("联系上了吗?", "Reached the customer?"), "yes": ("是", "Yes"), "no": ("否", "No"),
    "script": ("话术", "Script"), "due": ("到期", "Due"), "next_step": ("下一步", "Next step"),
    "complaint": ("顾客提出的新投诉(如有)", "A complaint the customer raised (if any)"),
    "purpose": ("回访目的", "Purpose"), "tier": ("客户等级", "Tier"),
    "attempts": ("已尝试次数", "Attempts"),
    "case_revisits": ("投诉回访", "Case revisits"), "programme_revisits": ("会员回访与预约", "Member revisits and appointments"),
    "no_triage": ("没有等待分类的投诉。", "No case waits for a category."),
    "suggestions": ("系统建议", "Suggestions"), "confidence": ("把握", "Confidence"),
    "set_category": ("确认类别", "Set the category"),
    "period": ("统计期间", "Period"), "on_time_first_response": ("首次响应及时率", "On-time first response"),
    "on_time_resolution": ("按时解决率", "On-time resolution"), "satisfaction": ("满意度", "Satisfaction"),
    "open_breaches": ("已超时未结", "Open and breached"), "at_risk": ("即将超时(4小时内)", "At risk (within 4 h)"),
    "open_cases": ("未结投诉", "Open cases"), "repeat_problems": ("重复问题 (30天)", "Repeat problems (30 days)"),
    "cases_total": ("投诉总数", "Cases"), "target": ("目标", "target"),
    "no_escalations": ("没有等您处理的升级投诉。", "No escalated case waits for you."),
    "awaiting_approval": ("等您审批的方案", "Remedies waiting for your approval"),
    "escalated_cases": ("升级到您的投诉", "Cases escalated to you"), "rung": ("升级层级", "Rung"),
    "week": ("周", "Week"), "by_category": ("按类别", "By category"), "root_causes": ("根本原因", "Root causes"),
    "change": ("环比", "Change"), "no_data": ("暂无数据", "No data yet"),
    "live": ("自动刷新中", "Updating live"), "paused_clock": ("已暂停", "Paused"), "met": ("已达成", "Met"),
    "refresh": ("刷新", "Refresh"), "back_to_queue": ("返回待办", "Back to the queue"),
    "open": ("打开", "Open"), "case_changed": ("这个投诉单有更新。", "This case has changed."),
    "about_to_break": ("有时限即将超时!", "A deadline is about to break!"),
    "phone": ("电话", "Phone"), "name": ("姓名", "Name"),
    "timeline_more": ("只显示最近 {n} 条记录", "Showing the newest {n} entries"),
    "refund_needs_option": ("退款请选择 A-D 中的一项。", "For a refund, choose one of A-D."),
    "amount_invalid": ("金额请填写数字,例如 300 或 300.50。", "Enter the amount as a number, e.g. 300 or 300.50."),
    "csrf": ("页面已过期,请重新提交。", "The page had expired; please submit again."),
    "not_allowed_page": ("您的岗位不能查看这个页面。", "Your role cannot open this page."),
    "not_found_page": ("找不到这个页面。", "This page does not exist."),
    "skip": ("跳到主要内容", "Skip to the main content"),
    "menu": ("菜单", "Menu"), "signed_in_as": ("{name}({role})", "{name} ({role})"),
    "approve": ("批准", "Approve"), "reject": ("驳回", "Reject"),
    "resolve_with": ("用这个方案办结", "Resolve with this remedy"),
    "mine": ("我的", "Mine"), "reassign": ("转交给同事", "Hand over to a colleague"),
    "reassigned": ("已转交", "Handed over"), "colleague": ("接手的同事", "Colleague"), "previous_week": ("上一周", "Previous week"), "next_week": ("下一周", "Next week"),
    "cause": ("形成投诉的原因", "Why the complaint arose"), "improvement": ("改进措施", "Improvement"),
    "owner": ("负责人", "Owner"), "due_date": ("完成日期", "Due date"),
    "improvement_hint": ("美容院方面的原因需要至少一项改进措施。", "A cause on the salon's side needs at least one improvement."),
    "flag_repeat_customer": ("该顾客近期已多次获得赔偿或退款", "This customer was compensated or refunded repeatedly"),
    "actor": ("操作人", "By"), "at": ("时间", "At"),
    "approver": ("审批人", "Approver"), "proposed_by": ("提出人", "Proposed by"),
    "referral": ("转办来源", "Referred by"), "store_day": ("今日", "Today"),
    "no_remedy_default": ("默认:最新批准的方案;没有则为道歉", "Default: the newest approved remedy, else an apology"),
    "limits_hint": ("审批权限(元)", "Approval limits (yuan)"),
    "appointments": ("预约", "Appointments"), "no_appointments": ("这一天没有预约。", "No appointments that day."),
    "service_item": ("服务项目", "Service"), "reminder_sent": ("已提醒", "Reminded"),
    "reminder_planned": ("将于 {at} 提醒", "Reminder at {at}"), "reminder_none": ("未提醒", "Not reminded"),
    "contact_stopped": ("顾客已撤回同意,不发提醒", "The customer withdrew consent: no reminder"),
    "change_requested": ("顾客要求改到 {at}", "The customer asked to move it to {at}"),
    "previous_day": ("前一天", "Previous day"), "next_day": ("后一天", "Next day"),
}

# How the timeline's entries (routing's past-tense action names) read.
TIMELINE = {
    "submitted": ("顾客提交反馈", "Feedback submitted"), "routed": ("系统分派", "Routed"),
    "ladder_notified": ("通知负责人", "Owner notified"), "acknowledged": ("已接单", "Acknowledged"),
    "responded": ("已回复顾客", "Responded to the customer"), "noted": ("添加记录", "Note added"),
    "escalated": ("升级", "Escalated"), "warned": ("时限预警", "Deadline warning"),
    "breached": ("超时", "Deadline breached"), "reported_to_superior": ("上报上级", "Reported to superior"),
    "info_requested": ("请顾客补充信息", "Information requested"), "resumed": ("顾客已回复,继续处理", "Resumed"),
    "remedy_proposed": ("提出处理方案", "Remedy proposed"), "remedy_approved": ("方案已批准", "Remedy approved"),
    "remedy_rejected": ("方案被驳回", "Remedy rejected"), "root_cause_recorded": ("记录根本原因", "Root cause recorded"),
    "report_filed": ("提交书面报告", "Report filed"), "report_signed_off": ("书面报告已签发", "Report signed off"),
    "resolved": ("已办结", "Resolved"), "closed": ("已关闭", "Closed"), "reopened": ("已重开", "Reopened"),
    "linked": ("关联投诉", "Linked"), "merged": ("合并", "Merged"), "archived": ("已归档", "Archived"),
    "reclassified": ("更正类别", "Category corrected"), "reassigned": ("转交", "Reassigned"),
    "customer_recognised": ("识别老顾客", "Customer recognised"), "revisit_recorded": ("回访结果", "Revisit recorded"),
}
# followup's revisit statuses (its own vocabulary, services/followup/revisits.py)
REVISIT_STATUS = {"scheduled": ("已安排", "Scheduled"), "due": ("今天要回访", "Due"),
                  "completed": ("已完成", "Completed"), "cancelled": ("已取消", "Cancelled")}
ACTORS = {"system": ("系统", "System"), "customer": ("顾客", "Customer")}


def timeline_label(action, lang):
    zh, en = TIMELINE.get(action, (action, action))
    return en if lang == "en" else zh


def revisit_status(status, lang):
    zh, en = REVISIT_STATUS.get(status, (status, status))
    return en if lang == "en" else zh


def actor_label(actor, lang):
    zh, en = ACTORS.get(actor, (actor, actor))
    return en if lang == "en" else zh


def text(key, lang, **values):
    zh, en = TEXTS[key]
    chosen = en if lang == "en" else zh
    return chosen.format(**values) if values else chosen


# -- errors in words a salon employee understands -------------------------------------

ERRORS = {
    "unauthenticated": ("登录已过期,请重新登录。", "Your session expired: please log in again."),
    "invalid_credentials": ("工号或密码不正确,请再试一次。", "The staff ID or password is not right. Please try again."),
    "account_locked": ("密码错误次数太多,账号暂时锁定,请 {retry_after} 秒后再试,或联系店长重置密码。",
                       "Too many wrong passwords: the account is locked for {retry_after} s. "
                       "Try later or ask your manager."),
    "login_unavailable": ("系统暂时无法登录,请联系管理员。", "Logging in is not possible right now; please tell the administrator."),
    "forbidden": ("您的岗位不能做这个操作,请交给店长或上级处理。", "Your role cannot do this; please hand it to your manager."),
    "case_not_found": ("找不到这个投诉单(可能不属于您的门店)。", "This case cannot be found (it may belong to another store)."),
    "revisit_not_found": ("找不到这次回访(可能不属于您的门店)。", "This revisit cannot be found (it may belong to another store)."),
    "store_not_found": ("找不到这家门店(可能不在您的管辖范围)。", "This store cannot be found (it may be outside your area)."),
    "not_found": ("找不到要找的内容。", "Not found."),
    "invalid_transition": ("这个投诉单现在的状态不能这样操作(可能同事刚处理过),页面已显示最新状态。",
                           "The case's state does not allow this now (a colleague may just have acted); "
                           "the page shows the latest."),
    "concurrent_update": ("同事刚刚更新了这个投诉单,请看一下最新内容再操作。",
                          "A colleague just updated this case; please check the latest and try again."),
    "above_approval_limit": ("金额超出您的审批权限,需要上级审批。", "The amount is above your approval limit: a superior must approve it."),
    "own_proposal": ("不能审批自己提出的方案,请由上级审批。", "You cannot approve your own proposal; a superior must."),
    "below_rung": ("这个投诉单已升级到更高层级,需由当前负责人处理。", "This case has been escalated: its current owner must act."),
    "no_approver": ("找不到可以审批这个金额的人,请联系区域经理。", "Nobody can approve this amount; please call the regional manager."),
    "remedy_pending": ("还有一个方案在等审批,请先等审批结果。", "A remedy still waits for approval; wait for the decision first."),
    "remedy_not_approved": ("方案还没有批准,不能用它办结。", "The remedy is not approved yet, so the case cannot be resolved with it."),
    "remedy_decided": ("这个方案已经审批过了。", "This remedy has already been decided."),
    "root_cause_required": ("请先记录根本原因再关闭。", "Record the root cause before closing."),
    "report_required": ("这个投诉需要先提交书面报告并由总经理签发。", "This case needs its written report signed off first."),
    "no_report_required": ("这个投诉不需要书面报告。", "This case needs no written report."),
    "report_signed_off": ("书面报告已经签发。", "The report is already signed off."),
    "no_report_to_sign_off": ("还没有可以签发的书面报告。", "There is no report to sign off yet."),
    "merged": ("这个投诉单已合并到另一个单子。", "This case was merged into another one."),
    "already_recorded": ("这次回访已经记录过了。", "This revisit has already been recorded."),
    "revisit_task_not_due": ("这个回访刚刚被同事记录了。", "A colleague just recorded this revisit."),
    "revisit_task_closed": ("这个回访已经结束。", "This revisit has ended."),
    "validation_failed": ("填写的内容有问题:{fields}", "Something in the form is not right: {fields}"),
    "rate_limited": ("操作太频繁,请稍等一下再试。", "Too many requests; please wait a moment."),
    "storage_unavailable": ("系统暂时繁忙,这次没有保存,请稍后再试。", "The system is busy and nothing was saved; please try again shortly."),
    "internal_error": ("系统出了点问题,这次没有保存,请稍后再试;如果一直这样,请联系管理员。",
                       "Something went wrong and nothing was saved; try again, and tell the administrator if it persists."),
    "service_unreachable": ("暂时连不上系统,这次没有保存,请检查网络后再试。",
                            "The system cannot be reached and nothing was saved; check the network and try again."),
}
FIELDS = {
    "note": ("说明", "note"), "question": ("问题", "question"), "answer": ("回答", "answer"),
    "message": ("说明", "message"), "reason": ("原因", "reason"), "summary": ("报告内容", "report"),
    "amount_fen": ("金额", "amount"), "type": ("方案类型", "remedy type"), "refund_option": ("退款选项", "refund option"),
    "remedy_id": ("方案", "remedy"), "score": ("满意度", "satisfaction"), "comment": ("顾客评价", "comment"),
    "category": ("类别", "category"), "staff_id": ("工号", "staff ID"), "password": ("密码", "password"),
    "reached": ("是否联系上", "reached"), "cause": ("原因", "cause"), "actions": ("改进措施", "improvement"),
    "action_due": ("完成日期", "due date"), "complaint": ("新投诉", "complaint"), "next_step": ("下一步", "next step"),
}
REASONS = {
    "Missing data for required field.": ("必须填写", "is required"),
    "Field may not be null.": ("必须填写", "is required"),
    "Shorter than minimum length 1.": ("不能为空", "cannot be empty"),
}


def explain(code, lang, fields=None, retry_after=None):
    """What an API error means for the person at the desk (never a raw code or stack)."""
    zh, en = ERRORS.get(code, ("操作没有成功,请稍后再试。", "That did not work; please try again."))
    chosen = en if lang == "en" else zh
    described = "; ".join(
        f"{field_label(name, lang)} {reason_label(reasons, lang)}" for name, reasons in (fields or {}).items())
    return chosen.format(fields=described or "", retry_after=retry_after or 60)


def field_label(name, lang):
    zh, en = FIELDS.get(name, (name, name))
    return en if lang == "en" else zh


def reason_label(reasons, lang):
    first = (reasons or [""])[0]
    zh, en = REASONS.get(first, ("不正确", "is not valid"))
    return en if lang == "en" else zh
