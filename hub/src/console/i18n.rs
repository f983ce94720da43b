//! The console's words in Chinese (the default) and English: one table, used by the pages and
//! handed to the page's script as JSON.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The console's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn parse(text: &str) -> Option<Lang> {
        match text {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
    /// The `lang` attribute of `<html>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// (key, 中文, English).
const WORDS: &[(&str, &str, &str)] = &[
    ("app", "应急指挥平台", "Yingji emergency console"),
    ("nav.map", "态势图", "Map"),
    ("nav.feed", "实时动态", "Live feed"),
    ("nav.incidents", "灾情事件", "Incidents"),
    ("nav.dispatch", "调度", "Dispatch"),
    ("nav.resources", "资源", "Resources"),
    ("nav.nodes", "节点", "Nodes"),
    ("nav.audit", "审计日志", "Audit log"),
    ("nav.drills", "演练结果", "Drills"),
    ("nav.users", "用户", "Users"),
    ("logout", "退出", "Log out"),
    ("login", "登录", "Log in"),
    ("login.title", "值班员登录", "Duty officer login"),
    ("login.name", "用户名", "User name"),
    ("login.password", "密码", "Password"),
    ("login.failed", "用户名或密码不正确。", "Wrong user name or password."),
    ("login.expired", "登录已过期，请重新登录。", "Your session has ended; please log in again."),
    ("login.bye", "已退出。", "You have logged out."),
    ("login.stale", "登录表单已过期，请重试。", "The login form had expired; please try again."),
    ("mode.real", "实战", "Real"),
    ("mode.exercise", "演习", "Exercise"),
    ("mode.banner", "演习 EXERCISE — 以下仅为演练数据", "演习 EXERCISE — drill data only"),
    ("lang.other", "English", "中文"),
    ("role.viewer", "查看员", "viewer"),
    ("role.officer", "值班员", "officer"),
    ("role.commander", "指挥员", "commander"),
    ("role.admin", "管理员", "admin"),
    ("level.1", "Ⅰ级（特别重大）", "Level Ⅰ (extraordinary)"),
    ("level.2", "Ⅱ级（重大）", "Level Ⅱ (major)"),
    ("level.3", "Ⅲ级（较大）", "Level Ⅲ (large)"),
    ("level.4", "Ⅳ级（一般）", "Level Ⅳ (general)"),
    ("level.none", "无响应", "no response"),
    ("level", "响应级别", "Level"),
    ("map.incident", "灾情", "Incident"),
    ("map.warning", "预警", "Warning"),
    ("map.station.on", "站点在线", "Station online"),
    ("map.station.off", "站点离线", "Station offline"),
    ("map.team", "救援队伍", "Rescue team"),
    ("map.stations", "站点", "Stations"),
    ("map.incidents", "灾情", "Incidents"),
    ("map.warnings", "预警", "Warnings"),
    ("map.teams", "队伍", "Teams"),
    ("map.zoom_in", "放大", "Zoom in"),
    ("map.zoom_out", "缩小", "Zoom out"),
    ("map.reset", "全图", "Whole map"),
    ("map.no_regions", "未加载行政区划（启动时使用 --regions）", "No division polygons (start the hub with --regions)"),
    ("feed.node", "节点", "Node"),
    ("feed.kind", "类型", "Kind"),
    ("feed.level", "级别", "Level"),
    ("feed.all", "全部", "All"),
    ("feed.level_at_least", "及以上", "and above"),
    ("feed.time", "时间", "Time"),
    ("feed.region", "区划", "Division"),
    ("feed.incident", "事件", "Incident"),
    ("feed.detail", "内容", "Detail"),
    ("feed.live", "实时", "live"),
    ("feed.offline", "连接中断，正在重连…", "connection lost, reconnecting…"),
    ("kind.report", "灾情报告", "report"),
    ("kind.warning", "预警", "warning"),
    ("kind.stats", "统计", "statistics"),
    ("kind.device", "设备", "device"),
    ("kind.media", "图像", "image"),
    ("kind.assessment", "评估", "assessment"),
    ("kind.order", "指令", "order"),
    ("inc.open", "处置中", "Open"),
    ("inc.closed", "已核报结束", "Closed (final reports)"),
    ("inc.id", "事件", "Incident"),
    ("inc.hazard", "灾种", "Hazard"),
    ("inc.reports", "报告数", "Reports"),
    ("inc.first", "首报", "First report"),
    ("inc.last", "最新", "Latest"),
    ("inc.none", "暂无", "None"),
    ("inc.stats", "分区统计", "Statistics by division"),
    ("inc.chart", "主要指标变化", "Main indicators over time"),
    ("inc.timeline", "时间线", "Timeline"),
    ("inc.cap", "CAP 预警信息", "CAP alerts"),
    ("inc.set_level", "调整响应级别", "Change the response level"),
    ("inc.reason", "理由", "Reason"),
    ("inc.apply", "确认", "Apply"),
    ("inc.clear", "解除", "Clear"),
    ("inc.rule", "规则", "Rule"),
    ("inc.inputs", "依据", "Inputs"),
    ("fig.affected", "受灾人口", "Affected"),
    ("fig.deaths", "死亡", "Deaths"),
    ("fig.missing", "失踪", "Missing"),
    ("fig.injured", "受伤", "Injured"),
    ("fig.relocated", "紧急转移安置", "Relocated"),
    ("fig.needing_aid", "需紧急生活救助", "Needing aid"),
    ("fig.houses_collapsed", "倒塌房屋", "Houses collapsed"),
    ("fig.direct_loss_cny", "直接经济损失（元）", "Direct loss (CNY)"),
    ("disp.proposals", "调度建议", "Proposals"),
    ("disp.orders", "调度指令", "Orders"),
    ("disp.approve", "批准", "Approve"),
    ("disp.reject", "驳回", "Reject"),
    ("disp.edit", "修改", "Edit"),
    ("disp.save", "保存", "Save"),
    ("disp.cancel", "取消", "Cancel"),
    ("disp.reason_prompt", "驳回理由", "Reason for rejecting"),
    ("disp.team", "队伍", "Team"),
    ("disp.capability", "能力", "Capability"),
    ("disp.status", "状态", "Status"),
    ("disp.elapsed", "已用时", "Elapsed"),
    ("disp.ack_within", "应答时限", "Ack within"),
    ("disp.items", "物资", "Items"),
    ("disp.shortfall", "缺口", "Shortfall"),
    ("disp.none", "暂无调度建议", "No proposals waiting"),
    ("disp.no_orders", "暂无指令", "No orders"),
    ("disp.escalated", "已升级", "escalated"),
    ("disp.refused", "操作被拒绝", "Refused"),
    ("disp.readonly", "查看员只能查看调度。", "Viewers see the board but cannot act on it."),
    ("st.issued", "已下达", "issued"),
    ("st.received", "已接收", "received"),
    ("st.accepted", "已接受", "accepted"),
    ("st.en_route", "出发途中", "en route"),
    ("st.on_scene", "已到达", "on scene"),
    ("st.completed", "已完成", "completed"),
    ("st.declined", "已拒绝", "declined"),
    ("st.overdue", "超时", "overdue"),
    ("st.proposed", "待批准", "proposed"),
    ("st.available", "待命", "available"),
    ("st.assigned", "执行任务", "assigned"),
    ("st.unavailable", "不可用", "unavailable"),
    ("res.teams", "救援队伍", "Rescue teams"),
    ("res.stockpiles", "物资储备", "Stockpiles"),
    ("res.hazards", "风险隐患", "Risk hazards"),
    ("res.targets", "防护目标", "Protection targets"),
    ("res.import", "导入", "Import"),
    (
        "res.import_help",
        "粘贴 CSV 或 GeoJSON（整批导入，任何一行有误则全部不导入）",
        "Paste CSV or GeoJSON (all rows or none: one bad row refuses the file)",
    ),
    ("res.imported", "已导入", "Imported"),
    ("res.refused", "导入被拒绝", "Import refused"),
    ("res.id", "编号", "ID"),
    ("res.grade", "等级", "Grade"),
    ("res.name", "名称", "Name"),
    ("res.node", "节点", "Node"),
    ("res.province", "省份", "Province"),
    ("res.size", "人数", "Size"),
    ("res.kind", "类别", "Kind"),
    ("res.people", "人数", "People"),
    ("res.more", "条未显示", "more not shown"),
    ("node.id", "节点", "Node"),
    ("node.state", "状态", "State"),
    ("node.online", "在线", "online"),
    ("node.offline", "离线", "offline"),
    ("node.last_seen", "最近消息", "Last seen"),
    ("node.outbox", "待发送", "Outbox"),
    ("node.lag", "积压时长", "Oldest waiting"),
    ("node.events", "事件数", "Events"),
    ("node.stations", "站点在线", "Stations online"),
    ("node.version", "版本", "Version"),
    ("node.rules", "风险规则", "Risk rules"),
    ("node.reload", "重新加载规则", "Reload the rules"),
    ("audit.time", "时间", "Time"),
    ("audit.who", "操作人", "Who"),
    ("audit.role", "角色", "Role"),
    ("audit.action", "操作", "Action"),
    ("audit.target", "对象", "Target"),
    ("audit.remote", "来源", "From"),
    ("audit.detail", "详情", "Detail"),
    ("drill.id", "演练", "Drill"),
    ("drill.scenario", "想定", "Scenario"),
    ("drill.seed", "随机种子", "Seed"),
    ("drill.started", "开始", "Started"),
    ("drill.finished", "结束", "Finished"),
    ("drill.result", "评估结果", "Result"),
    ("drill.passed", "通过", "passed"),
    ("drill.failed", "未通过", "failed"),
    ("drill.report", "评估报告", "Report"),
    ("drill.none", "暂无演练结果", "No drill results yet"),
    ("drill.real_mode", "演练结果只在演习模式下显示。", "Drill results are shown in exercise mode."),
    ("user.name", "用户名", "Name"),
    ("user.role", "角色", "Role"),
    ("user.created", "创建时间", "Created"),
    ("user.add", "添加用户", "Add a user"),
    ("user.remove", "删除", "Remove"),
    ("user.added", "已添加用户", "Added user"),
    ("user.removed", "已删除用户", "Removed user"),
    ("err.forbidden", "您的角色无权执行此操作。", "Your role does not allow this."),
    ("err.not_found", "未找到。", "Not found."),
    (
        "err.csrf",
        "表单已过期（CSRF 校验失败），请刷新后重试。",
        "The form has expired (CSRF check failed); reload and try again.",
    ),
    ("err.bad", "请求有误", "Bad request"),
    ("signed_in_as", "当前用户", "Signed in as"),
    ("none", "—", "—"),
];

fn table() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static TABLE: OnceLock<HashMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| WORDS.iter().map(|(k, zh, en)| (*k, (*zh, *en))).collect())
}

/// The word for `key` in `lang` (the key itself if the table lacks it).
pub fn t(lang: Lang, key: &'static str) -> &'static str {
    match (table().get(key), lang) {
        (Some((zh, _)), Lang::Zh) => zh,
        (Some((_, en)), Lang::En) => en,
        (None, _) => key,
    }
}

/// Like [`t`] for a key made at run time (a status or kind from the data); `None` if unknown.
pub fn lookup(lang: Lang, key: &str) -> Option<&'static str> {
    table().get(key).map(|(zh, en)| if lang == Lang::Zh { *zh } else { *en })
}

/// Every word in `lang`, for the page's script.
pub fn all(lang: Lang) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> =
        WORDS.iter().map(|(k, zh, en)| ((*k).to_owned(), (if lang == Lang::Zh { *zh } else { *en }).into())).collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_once_in_the_table_with_both_languages() {
        let mut seen = std::collections::HashSet::new();
        for (k, zh, en) in WORDS {
            assert!(seen.insert(*k), "{k} twice");
            assert!(!zh.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(t(Lang::Zh, "nav.map"), "态势图");
        assert_eq!(t(Lang::En, "nav.map"), "Map");
        assert_eq!(t(Lang::En, "no.such.key"), "no.such.key");
        assert_eq!(Lang::default(), Lang::Zh, "Chinese by default");
    }
}
