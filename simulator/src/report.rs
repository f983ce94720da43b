//! The after-action report as one self-contained HTML page with SVG charts: no script, no
//! external asset, every text escaped. Pure: an [`Evaluation`] in, a `String` out.

use std::fmt::Write as _;

use crate::eval::{Dist, Evaluation};

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "–".to_owned(),
    }
}

const STYLE: &str = "body{font:14px/1.45 system-ui,'Noto Sans CJK SC',sans-serif;margin:2em auto;max-width:1100px;color:#1b1f24;padding:0 1em}\
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}\
.verdict{display:inline-block;padding:.3em .8em;border-radius:4px;font-weight:600;color:#fff}\
.pass{background:#1a7f37}.fail{background:#cf222e}.banner{background:repeating-linear-gradient(45deg,#fff3c4,#fff3c4 12px,#ffe08a 12px,#ffe08a 24px);padding:.4em .8em;font-weight:600}\
table{border-collapse:collapse;width:100%;margin:.6em 0}th,td{border:1px solid #d0d7de;padding:.25em .5em;text-align:right}\
th:first-child,td:first-child,td.l{text-align:left}tr.bad td{background:#ffebe9}.cards{display:flex;flex-wrap:wrap;gap:.8em}\
.card{border:1px solid #d0d7de;border-radius:6px;padding:.6em 1em;min-width:9em}.card b{display:block;font-size:1.4em}\
svg{background:#fafbfc;border:1px solid #d0d7de}small{color:#57606a}";

/// Renders the report.
pub fn render(e: &Evaluation) -> String {
    let mut h = String::new();
    let verdict = if e.passed {
        "<span class=\"verdict pass\">PASSED</span>"
    } else {
        "<span class=\"verdict fail\">FAILED</span>"
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Drill {id} — {title}</title><style>{STYLE}</style></head><body>\
         <div class=\"banner\">演习 EXERCISE — after-action report</div>\
         <h1>{title}</h1><p>{verdict} scenario <code>{scenario}</code>, seed {seed}, speed ×{speed}, \
         {start} → {end} ({wall:.0} s)</p>",
        id = esc(&e.id),
        title = esc(&e.title),
        scenario = esc(&e.scenario),
        seed = e.seed,
        speed = e.speed,
        start = esc(&e.started_at),
        end = esc(&e.finished_at),
        wall = e.wall_s,
    );
    let s = &e.statistics;
    let o = &e.orders;
    h.push_str("<div class=\"cards\">");
    for (label, value) in [
        ("divisions checked", s.divisions.to_string()),
        ("indicator mismatches", s.mismatches.len().to_string()),
        ("warnings expected / raised", format!("{} / {}", e.warnings.expected, e.warnings.raised)),
        ("orders issued", o.issued.to_string()),
        ("acknowledged", o.acknowledged.to_string()),
        ("declined", o.declined.to_string()),
        ("overdue", o.overdue.to_string()),
        ("escalated", o.escalated.to_string()),
        ("report latency p99", format!("{} ms", num(e.report_latency_ms.p99))),
        ("messages published", e.fleet.published.to_string()),
    ] {
        let _ = write!(h, "<div class=\"card\"><b>{}</b>{}</div>", esc(&value), esc(label));
    }
    h.push_str("</div>");

    // Statistics.
    let _ = write!(
        h,
        "<h2>Statistics against the truth</h2><p>{} divisions, {} indicator values compared; {} differ.</p>",
        s.divisions,
        s.indicators,
        s.mismatches.len()
    );
    if !s.mismatches.is_empty() {
        h.push_str("<table><tr><th>incident</th><th>division</th><th>indicator</th><th>truth</th><th>hub</th></tr>");
        for m in &s.mismatches {
            let _ = write!(
                h,
                "<tr class=\"bad\"><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.incident),
                esc(&m.division),
                esc(&m.indicator),
                m.expected.map(|v| v.to_string()).unwrap_or_else(|| "–".into()),
                m.got.map(|v| v.to_string()).unwrap_or_else(|| "–".into())
            );
        }
        h.push_str("</table>");
    }
    let indicators: Vec<String> = {
        let mut keys: Vec<String> = s.rows.iter().flat_map(|r| r.expected.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        keys
    };
    let several = s.rows.iter().any(|r| r.incident != s.rows[0].incident);
    h.push_str(if several { "<table><tr><th>incident</th><th>division</th>" } else { "<table><tr><th>division</th>" });
    for k in &indicators {
        let _ = write!(h, "<th>{}</th>", esc(k));
    }
    h.push_str("</tr>");
    for r in s.rows.iter().take(400) {
        let _ = write!(h, "<tr{}>", if r.equal { "" } else { " class=\"bad\"" });
        if several {
            let _ = write!(h, "<td>{}</td>", esc(&r.incident));
        }
        let _ = write!(h, "<td>{} {}</td>", esc(&r.division), esc(&r.name));
        for k in &indicators {
            let (want, got) = (r.expected.get(k), r.got.get(k));
            let cell = match (want, got) {
                (Some(w), Some(g)) if w == g => w.to_string(),
                (w, g) => format!(
                    "{} ≠ {}",
                    w.map(|v| v.to_string()).unwrap_or_else(|| "–".into()),
                    g.map(|v| v.to_string()).unwrap_or_else(|| "–".into())
                ),
            };
            let _ = write!(h, "<td>{}</td>", esc(&cell));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    if s.rows.len() > 400 {
        let _ = write!(h, "<p><small>{} more rows in the JSON report.</small></p>", s.rows.len() - 400);
    }

    // Warnings.
    let w = &e.warnings;
    let _ = write!(
        h,
        "<h2>Warnings</h2><p>{} expected, {} raised at the hub, {} matched; {} missed, {} unexpected.</p>",
        w.expected,
        w.raised,
        w.matched,
        w.missed.len(),
        w.unexpected.len()
    );
    h.push_str(&dist_table("lateness, scenario seconds", &[("expected crossing → hub", &w.late_s)]));
    if !w.missed.is_empty() {
        let _ = write!(h, "<p>Missed: {}</p>", esc(&w.missed.join(", ")));
    }

    // Response.
    let r = &e.response;
    h.push_str("<h2>Response</h2>");
    h.push_str(&dist_table(
        "wall seconds",
        &[
            ("report → the level change it triggered", &r.report_to_assessment_s),
            ("first report → order", &r.report_to_order_s),
            ("order → acknowledgement", &r.order_to_ack_s),
            ("first report → acknowledgement", &r.report_to_ack_s),
        ],
    ));
    h.push_str(&bars(
        "Response times (p50 / p95 / p99, wall seconds)",
        &[
            ("report→assessment", &r.report_to_assessment_s),
            ("report→order", &r.report_to_order_s),
            ("order→ack", &r.order_to_ack_s),
            ("report→ack", &r.report_to_ack_s),
        ],
    ));
    let _ = write!(
        h,
        "<h2>Orders</h2><p>{} issued: {} acknowledged ({} accepted, {} completed, {} declined), {} overdue, \
         {} escalated, {} resent; {} refused by teams for a bad signature.</p>",
        o.issued,
        o.acknowledged,
        o.accepted,
        o.completed,
        o.declined,
        o.overdue,
        o.escalated,
        o.resent,
        o.refused_by_teams
    );
    if !o.unanswered.is_empty() {
        let _ = write!(h, "<p class=\"bad\">Unanswered at the end: {}</p>", esc(&o.unanswered.join(", ")));
    }

    // Latency and traffic.
    h.push_str("<h2>Event latency, device to hub</h2>");
    h.push_str(&dist_table("milliseconds", &[("reports", &e.report_latency_ms)]));
    h.push_str(&series_chart("Reports visible at the hub per scenario minute", &e.reports_per_minute));
    if !e.levels.is_empty() {
        h.push_str("<h2>Assessed levels over scenario time</h2>");
        h.push_str(&levels_chart(&e.levels));
    }
    let f = &e.fleet;
    let _ = write!(
        h,
        "<h2>Fleet</h2><p>{} stations, {} teams; {} messages ({} readings packs, {} reports, {} statuses), \
         {:.0} messages/s; publishing fell behind the schedule by at most {} ms.</p></body></html>",
        f.stations, f.teams, f.published, f.readings, f.reports, f.statuses, f.rate_per_s, f.max_lag_ms
    );
    h
}

fn dist_table(unit: &str, rows: &[(&str, &Dist)]) -> String {
    let mut h =
        format!("<table><tr><th>{}</th><th>n</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>", esc(unit));
    for (label, d) in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(label),
            d.n,
            num(d.p50),
            num(d.p95),
            num(d.p99),
            num(d.max)
        );
    }
    h.push_str("</table>");
    h
}

/// Grouped bars: p50, p95, p99 per row.
fn bars(title: &str, rows: &[(&str, &Dist)]) -> String {
    let (width, height, left, bottom) = (760.0, 240.0, 50.0, 40.0);
    let top = rows.iter().filter_map(|(_, d)| d.p99).fold(0.0_f64, f64::max).max(1e-9) * 1.1;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">",
        esc(title)
    );
    axis(&mut svg, width, height, left, bottom, top);
    let group = (width - left - 10.0) / rows.len().max(1) as f64;
    let colours = ["#54aeff", "#0969da", "#0a3069"];
    for (i, (label, d)) in rows.iter().enumerate() {
        let x0 = left + group * i as f64 + group * 0.15;
        let bar = group * 0.7 / 3.0;
        for (j, v) in [d.p50, d.p95, d.p99].iter().enumerate() {
            let v = v.unwrap_or(0.0);
            let bh = (height - bottom - 10.0) * v / top;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} p{}: {}</title></rect>",
                x0 + bar * j as f64,
                height - bottom - bh,
                bar - 2.0,
                bh,
                colours[j],
                esc(label),
                [50, 95, 99][j],
                num(Some(v))
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            x0 + group * 0.35,
            height - bottom + 16.0,
            esc(label)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn axis(svg: &mut String, width: f64, height: f64, left: f64, bottom: f64, top: f64) {
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"10\" x2=\"{left}\" y2=\"{y}\" stroke=\"#57606a\"/>\
         <line x1=\"{left}\" y1=\"{y}\" x2=\"{x}\" y2=\"{y}\" stroke=\"#57606a\"/>\
         <text x=\"{tx}\" y=\"16\" font-size=\"11\" text-anchor=\"end\">{top}</text>\
         <text x=\"{tx}\" y=\"{y}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        y = height - bottom,
        x = width - 10.0,
        tx = left - 4.0,
        top = num(Some(top)),
    );
}

fn series_chart(title: &str, points: &[(f64, u64)]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let (width, height, left, bottom) = (760.0, 200.0, 50.0, 30.0);
    let max_x = points.iter().map(|p| p.0).fold(0.0_f64, f64::max).max(1.0);
    let max_y = points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">",
        esc(title)
    );
    axis(&mut svg, width, height, left, bottom, max_y);
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                left + (width - left - 10.0) * x / max_x,
                height - bottom - (height - bottom - 10.0) * (*y as f64) / max_y
            )
        })
        .collect();
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{:.0} min</text></svg></figure>",
        path.join(" "),
        width - 10.0,
        height - 8.0,
        max_x
    );
    svg
}

fn levels_chart(levels: &std::collections::BTreeMap<String, Vec<(f64, Option<u8>)>>) -> String {
    let (width, left) = (760.0, 160.0);
    let rows: Vec<_> = levels.iter().take(40).collect();
    let height = 20.0 * rows.len() as f64 + 30.0;
    let max_x = rows.iter().flat_map(|(_, v)| v.iter().map(|p| p.0)).fold(0.0_f64, f64::max).max(1.0);
    let colour = |l: Option<u8>| match l {
        Some(1) => "#cf222e",
        Some(2) => "#fb8500",
        Some(3) => "#e3b341",
        Some(4) => "#0969da",
        _ => "#eaeef2",
    };
    let mut svg = format!("<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
    for (i, (subject, steps)) in rows.iter().enumerate() {
        let y = 10.0 + 20.0 * i as f64;
        let _ = write!(svg, "<text x=\"4\" y=\"{:.1}\" font-size=\"11\">{}</text>", y + 12.0, esc(subject));
        for (j, (t, level)) in steps.iter().enumerate() {
            let end = steps.get(j + 1).map(|s| s.0).unwrap_or(max_x);
            let x = left + (width - left - 10.0) * t / max_x;
            let w = ((width - left - 10.0) * (end - t) / max_x).max(1.0);
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"16\" fill=\"{}\"><title>{}: level {}</title></rect>",
                colour(*level),
                esc(subject),
                level.map(|l| l.to_string()).unwrap_or_else(|| "none".into())
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_text_is_escaped_and_nothing_runs() {
        let mut e =
            Evaluation { title: "<script>alert(1)</script>".into(), scenario: "a\"b".into(), ..Evaluation::default() };
        e.warnings.missed = vec!["<img src=x onerror=alert(1)>".into()];
        let html = render(&e);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("FAILED"));
    }

    #[test]
    fn a_passed_drill_says_so_and_draws_its_charts() {
        let e = Evaluation {
            passed: true,
            reports_per_minute: vec![(0.0, 1), (1.0, 5)],
            levels: [("440100".to_owned(), vec![(0.0, None), (3.0, Some(4))])].into_iter().collect(),
            ..Evaluation::default()
        };
        let html = render(&e);
        assert!(html.contains("PASSED"));
        assert!(html.contains("<polyline"));
        assert!(html.contains("level 4"));
        assert_eq!(esc("a&<>\"'"), "a&amp;&lt;&gt;&quot;&#39;");
    }
}
