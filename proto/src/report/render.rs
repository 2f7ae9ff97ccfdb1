//! The report as HTML (a table and, per station, two bar charts drawn as inline SVG on the
//! server: no script, no CDN) and as CSV. The page around it is each side's own.

use std::fmt::Write as _;

use super::{Report, StationReport};

/// The report's style sheet: the box inlines it, the relay serves it as a file (its CSP allows
/// no inline style).
pub const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1rem 2rem;color:#111;background:#fff}\
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .4rem}\
nav a,nav button{margin-right:.8rem}form.period{margin:.6rem 0}form.period label{margin-right:.6rem}\
table.report{border-collapse:collapse;margin:.6rem 0}\
table.report th,table.report td{border-bottom:1px solid #ccc;padding:.3rem .7rem;text-align:right}table.report td{white-space:nowrap}\
table.report th:first-child,table.report td:first-child{text-align:left}\
.charts{display:flex;flex-wrap:wrap;gap:1.2rem}.charts svg{border:1px solid #ddd;background:#fafafa}\
.bar{fill:#2f6fb0}.bar.time{fill:#c0702a}.axis{stroke:#888;stroke-width:1}\
svg text{font-size:10px;fill:#333}.muted{color:#666}.error{color:#b00020;font-weight:bold}\
@media print{nav,form.period{display:none}}";

/// `m:ss`, or `—` for none.
pub fn duration(seconds: Option<u32>) -> String {
    match seconds {
        Some(seconds) => format!("{}:{:02}", seconds / 60, seconds % 60),
        None => "—".to_owned(),
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |rate| format!("{:.1} %", rate * 100.0))
}

fn one_decimal(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |value| format!("{value:.1}"))
}

pub fn escape(text: &str) -> String {
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

/// The table of every station and each station's charts.
pub fn body(report: &Report) -> String {
    let period = &report.period;
    let mut html = String::new();
    let _ = write!(
        html,
        "<p class=\"muted\" id=\"period\">{} to {} ({} day{}; tickets by the day they arrived)</p>",
        period.from,
        period.to,
        period.days(),
        if period.days() == 1 { "" } else { "s" }
    );
    html.push_str(
        "<table class=\"report\" id=\"stations\"><thead><tr><th>Station</th><th>Tickets</th>\
         <th>Bumped</th><th>Ticket time p50</th><th>p90</th><th>Late</th><th>On time</th>\
         <th>Items</th><th>Items / hour</th><th>Batches started</th><th>completed</th></tr>\
         </thead><tbody>",
    );
    for station in &report.stations {
        let _ = write!(
            html,
            "<tr data-station=\"{id}\"><td>{name}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            station.tickets,
            station.bumped,
            duration(station.p50_s),
            duration(station.p90_s),
            station.late,
            percent(station.on_time_rate()),
            station.units,
            one_decimal(station.items_per_hour()),
            station.sessions_started,
            station.sessions_completed,
            id = escape(&station.station_id),
            name = escape(&station.name),
        );
    }
    html.push_str("</tbody></table>");
    for station in report.stations.iter().filter(|station| station.tickets > 0) {
        let _ = write!(
            html,
            "<h2>{}</h2><div class=\"charts\">{}{}</div>",
            escape(&station.name),
            chart(
                "Tickets by hour of arrival",
                "bar",
                &hourly(station, |hour| Some(f64::from(hour.tickets))),
                (0, "tickets"),
            ),
            chart(
                "Ticket time p50 by hour (minutes)",
                "bar time",
                &hourly(station, |hour| hour.p50_s.map(|s| f64::from(s) / 60.0)),
                (1, "min"),
            ),
        );
    }
    html
}

fn hourly(
    station: &StationReport,
    value: impl Fn(&super::HourFigures) -> Option<f64>,
) -> Vec<Option<f64>> {
    station.hours.iter().map(value).collect()
}

/// A bar chart of 24 hourly values (`None`: no bar), labelled with `decimals` and `unit`.
fn chart(
    title: &str,
    class: &str,
    values: &[Option<f64>],
    (decimals, unit): (usize, &str),
) -> String {
    const WIDTH: f64 = 24.0 * 18.0;
    const HEIGHT: f64 = 120.0;
    const LEFT: f64 = 34.0;
    const TOP: f64 = 22.0;
    let max = values.iter().flatten().copied().fold(0.0_f64, f64::max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\"><title>{t}</title><text x=\"{LEFT}\" y=\"14\">{t}</text>",
        w = WIDTH + LEFT + 8.0,
        h = HEIGHT + TOP + 20.0,
        t = escape(title),
    );
    let base = TOP + HEIGHT;
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>\
         <text x=\"2\" y=\"{}\">{max:.decimals$}</text><text x=\"2\" y=\"{base}\">0</text>",
        LEFT + WIDTH,
        TOP + 8.0,
    );
    for (hour, value) in values.iter().enumerate() {
        let x = LEFT + hour as f64 * 18.0;
        if hour % 3 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\">{hour:02}</text>",
                x + 2.0,
                base + 14.0
            );
        }
        let Some(value) = value.filter(|value| *value > 0.0) else {
            continue;
        };
        let height = (value / max * HEIGHT).max(1.0);
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"{height:.1}\">\
             <title>{hour:02}:00 {value:.decimals$} {unit}</title></rect>",
            x + 2.0,
            base - height,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One line per station (`hour` = `all`) followed by its 24 hours, seconds as whole numbers.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "from,to,station_id,station,hour,tickets,bumped,p50_seconds,p90_seconds,late,\
         on_time_rate,items,items_per_hour,batches_started,batches_completed\n",
    );
    let number = |value: Option<u32>| value.map(|v| v.to_string()).unwrap_or_default();
    let period = format!("{},{}", report.period.from, report.period.to);
    for station in &report.stations {
        let who = format!("{},{}", field(&station.station_id), field(&station.name));
        let _ = writeln!(
            out,
            "{period},{who},all,{},{},{},{},{},{},{},{},{},{}",
            station.tickets,
            station.bumped,
            number(station.p50_s),
            number(station.p90_s),
            station.late,
            station
                .on_time_rate()
                .map(|rate| format!("{rate:.4}"))
                .unwrap_or_default(),
            station.units,
            station
                .items_per_hour()
                .map(|rate| format!("{rate:.2}"))
                .unwrap_or_default(),
            station.sessions_started,
            station.sessions_completed,
        );
        for (hour, figures) in station.hours.iter().enumerate() {
            let _ = writeln!(
                out,
                "{period},{who},{hour},{},,{},,,,{},,,",
                figures.tickets,
                number(figures.p50_s),
                figures.units,
            );
        }
    }
    out
}

/// A CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@` is prefixed with `'` so
/// a spreadsheet does not run it as a formula.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}
