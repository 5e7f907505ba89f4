"""The words of the pages in English and Simplified Chinese: one table, a key per phrase.

A key missing from a language falls back to English, then to the key, so a
page never breaks over a missing translation. Error messages from the
producer (a bad window, a refused state change) stay as the producer wrote
them: they are the same words the CLI and the API give, which support staff
can search for; the label beside them is translated.
"""

from __future__ import annotations

from collections.abc import Callable

# key: (English, 简体中文)
MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("SIP dialer", "外呼系统"),
    "campaigns": ("Campaigns", "外呼任务"),
    "dnc": ("Do-not-call list", "免打扰名单"),
    "api_docs": ("API docs", "接口文档"),
    "sign_in": ("Sign in", "登录"),
    "sign_out": ("Sign out", "退出"),
    "token": ("API token", "API 令牌"),
    "token_help": ("The DIALER_API_TOKEN of this server.", "本服务的 DIALER_API_TOKEN。"),
    "wrong_token": ("That token is not right.", "令牌不正确。"),
    "expired": ("Please sign in (your session ended).", "请登录（会话已结束）。"),
    "form_expired": ("The form expired; please try again.", "表单已过期，请重试。"),
    "new_campaign": ("New campaign", "新建任务"),
    "create": ("Create", "创建"),
    "name": ("Name", "名称"),
    "state": ("State", "状态"),
    "progress": ("Progress", "进度"),
    "answer_rate": ("Answer rate", "接通率"),
    "in_progress": ("Calls in progress", "通话中"),
    "calls_per_s": ("Calls/s", "呼叫/秒"),
    "eta": ("Time to finish", "预计完成"),
    "next_window": ("Next calling window", "下次外呼时段"),
    "open_now": ("open now", "现在"),
    "never": ("none", "无"),
    "done": ("done", "已完成"),
    "no_campaigns": ("No campaigns yet.", "还没有外呼任务。"),
    "jobs": ("jobs", "个号码"),
    "remaining": ("to go", "待拨"),
    "attempts": ("Attempts", "呼叫次数"),
    "trunk": ("Trunk", "线路"),
    "start": ("Start", "开始"),
    "pause": ("Pause", "暂停"),
    "resume": ("Resume", "继续"),
    "cancel": ("Cancel campaign", "取消任务"),
    "cancel_confirm": ("Cancel this campaign for good? Numbers not yet dialled will not be called.",
                       "确定永久取消该任务？尚未拨打的号码将不再拨打。"),
    "confirm_cancel": ("Yes, cancel it", "确定取消"),
    "back": ("Back", "返回"),
    "upload": ("Upload a list", "上传号码表"),
    "upload_help": ("CSV (UTF-8 or GBK) or XLSX with a phone column.", "CSV（UTF-8 或 GBK）或 XLSX，需含电话列。"),
    "phone_column": ("Phone column (optional)", "电话列名（可选）"),
    "send": ("Upload", "上传"),
    "uploading": ("Uploading…", "上传中…"),
    "accepted": ("Accepted", "已接受"),
    "duplicates": ("Duplicates", "重复"),
    "dnc_count": ("On DNC", "免打扰"),
    "rejected": ("Rejected", "已拒绝"),
    "rejected_rows": ("Rejected rows", "被拒绝的行"),
    "row": ("Row", "行"),
    "field": ("Field", "字段"),
    "value": ("Value", "值"),
    "reason": ("Reason", "原因"),
    "download_csv": ("Download CSV", "下载 CSV"),
    "outcomes": ("Outcomes", "呼叫结果"),
    "search": ("Search", "搜索"),
    "search_hint": ("number or name", "号码或姓名"),
    "all_outcomes": ("all outcomes", "全部结果"),
    "number": ("Number", "号码"),
    "details": ("Details", "资料"),
    "outcome": ("Outcome", "结果"),
    "last_code": ("Last SIP code", "最后 SIP 码"),
    "updated": ("Updated", "更新时间"),
    "export_csv": ("Export CSV", "导出 CSV"),
    "ladder": ("Attempt ladder", "呼叫过程"),
    "show": ("Show", "查看"),
    "attempt": ("Attempt", "第几次"),
    "variant": ("Variant", "号码格式"),
    "dialled": ("Dialled", "拨出"),
    "code": ("SIP code", "SIP 码"),
    "provisional": ("Provisional", "临时响应"),
    "invite_at": ("INVITE at", "发起时间"),
    "answer_at": ("Answered at", "接听时间"),
    "end_at": ("Ended at", "结束时间"),
    "talk_s": ("Talk s", "通话秒数"),
    "hangup_by": ("Hung up by", "挂断方"),
    "flow": ("Flow steps", "流程步骤"),
    "recording": ("Recording", "录音"),
    "no_attempts": ("Not dialled yet.", "尚未拨打。"),
    "page": ("Page", "页"),
    "of": ("of", "/"),
    "prev": ("Previous", "上一页"),
    "next": ("Next", "下一页"),
    "matches": ("matching", "条匹配"),
    "add": ("Add", "添加"),
    "remove": ("Remove", "移除"),
    "added_at": ("Added", "添加时间"),
    "dnc_add": ("Add a number", "添加号码"),
    "dnc_upload": ("Upload a file of numbers", "上传号码文件"),
    "dnc_added": ("{e164} is on the list; {skipped} waiting jobs skipped.",
                  "{e164} 已加入名单；跳过 {skipped} 个待拨号码。"),
    "dnc_already": ("{e164} was already on the list.", "{e164} 已在名单中。"),
    "dnc_removed": ("{e164} removed from the list.", "{e164} 已移出名单。"),
    "dnc_not_listed": ("{e164} was not on the list.", "{e164} 不在名单中。"),
    "dnc_imported": ("{added} added, {already} already listed, {rejected} rejected; {skipped} waiting jobs skipped.",
                     "新增 {added} 个，已在名单 {already} 个，拒绝 {rejected} 个；跳过 {skipped} 个待拨号码。"),
    "nothing_listed": ("No numbers listed.", "名单为空。"),
    "created": ("Campaign created. Next: upload a list, then start it.", "任务已创建。下一步：上传号码表，然后开始。"),
    "now_state": ("The campaign is now {state}.", "任务状态：{state}。"),
    "fix_fields": ("Please correct the fields marked below.", "请修改下方标出的字段。"),
    "language": ("中文", "English"),
    "f_name": ("Name", "任务名称"),
    "f_trunk": ("Trunk", "线路"),
    "f_region": ("Default region", "默认地区"),
    "f_tz": ("Time zone", "时区"),
    "f_window": ("Calling hours (empty: all day)", "外呼时段（留空为全天）"),
    "f_days": ("Calling days", "外呼日"),
    "f_start-at": ("Do not dial before", "开始时间"),
    "f_end-at": ("Do not dial after", "结束时间"),
    "f_recur": ("Re-open on (cron)", "重复（cron）"),
    "f_max-attempts": ("Attempts per number", "每号码最多呼叫次数"),
    "f_retry-delay": ("Retry delays", "重试间隔"),
    "f_max-concurrent": ("Calls at once, at most", "最大并发"),
    "f_cps": ("Call starts per second", "每秒呼叫数"),
    "f_ring-timeout": ("Ring timeout", "振铃超时"),
    "f_hold": ("Stay on answered calls", "接通后保持"),
    "f_allow-regions": ("Allowed regions", "允许地区"),
    "f_allow-types": ("Number types", "号码类型"),
    "h_window": ("e.g. 09:00-12:00,14:00-20:00", "例如 09:00-12:00,14:00-20:00"),
    "h_days": ("e.g. mon-fri", "例如 mon-fri"),
    "h_start-at": ("ISO 8601, e.g. 2030-06-01T09:30", "ISO 8601，例如 2030-06-01T09:30"),
    "h_end-at": ("ISO 8601; no offset = the time zone above", "ISO 8601；不带时区则按上面的时区"),
    "h_recur": ("e.g. 0 10 * * mon-fri", "例如 0 10 * * mon-fri"),
    "h_retry-delay": ("e.g. busy=10m,no_answer=30m", "例如 busy=10m,no_answer=30m"),
    "h_ring-timeout": ("e.g. 45s", "例如 45s"),
    "h_hold": ("e.g. 0s or 20s", "例如 0s 或 20s"),
    "h_allow-regions": ("e.g. CN,HK (default: the region)", "例如 CN,HK（默认：默认地区）"),
    "h_allow-types": ("mobile, fixed_line, toll_free …", "mobile, fixed_line, toll_free …"),
    "st_draft": ("draft", "草稿"),
    "st_running": ("running", "进行中"),
    "st_paused": ("paused", "已暂停"),
    "st_cancelled": ("cancelled", "已取消"),
    "st_finished": ("finished", "已结束"),
}
# Outcomes and job states: the stored word stays the English code (it is the CSV's and the API's value);
# pages show it in the reader's language. A code with no entry here (a new outcome) is shown as it is.
WORDS: dict[str, str] = {
    "answered": "已接听", "busy": "忙线", "no_answer": "无人接听", "rejected": "被拒接", "not_found": "号码不存在",
    "invalid_number": "无效号码", "auth_failed": "线路认证失败", "transient": "临时故障", "failed": "失败",
    "worker_lost": "外呼进程中断", "cancelled": "已取消", "skipped_dnc": "免打扰跳过", "pending": "待拨",
    "queued": "排队中", "dialing": "拨打中", "completed": "已完成", "retry_wait": "等待重试",
    "transferred": "已转接", "transfer_failed": "转接失败", "opted_out": "已退订", "message_played": "已播放",
    "abandoned": "放弃呼叫",
}
_INDEX = {"en": 0, "zh-CN": 1}


def word(language: str, code: str) -> str:
    """An outcome or job state in ``language``: the code itself in English or when it has no entry."""
    return WORDS.get(code, code) if language == "zh-CN" else code.replace("_", " ")


def translator(language: str) -> Callable[..., str]:
    """``t(key, **values)`` in ``language``: English, then the key itself, when a phrase is missing."""
    index = _INDEX.get(language, 0)

    def t(key: str, **values: object) -> str:
        pair = MESSAGES.get(key)
        text = (pair[index] or pair[0]) if pair else key
        return text.format(**values) if values else text

    return t
