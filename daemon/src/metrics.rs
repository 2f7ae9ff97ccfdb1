//! The Prometheus text format (0.0.4) for both services' `/metrics`: families of counters,
//! gauges and histograms, each family's `# HELP` and `# TYPE` written once, its samples
//! together, label values and help text escaped.

use std::fmt::Write;

/// The `Content-Type` of the text this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Label names and values of one sample, in the order written. Names are plain
/// (`[a-zA-Z_][a-zA-Z0-9_]*`); values may be anything and are escaped.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A sample's value as the text format writes it.
pub trait SampleValue {
    fn write_to(&self, out: &mut String);
}

macro_rules! integer_values {
    ($($type:ty),*) => {$(
        impl SampleValue for $type {
            fn write_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

integer_values!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// Shortest text that reads back as the same number (`1.5`, `2`, `0.0025`); `NaN`, `+Inf`
/// and `-Inf` as the format spells them.
impl SampleValue for f64 {
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// `1` or `0`: a state as a gauge.
impl SampleValue for bool {
    fn write_to(&self, out: &mut String) {
        out.push(if *self { '1' } else { '0' });
    }
}

/// A float with a fixed number of decimals (`Fixed { value: 0.5, decimals: 6 }` → `0.500000`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed {
    pub value: f64,
    pub decimals: usize,
}

impl SampleValue for Fixed {
    fn write_to(&self, out: &mut String) {
        if self.value.is_finite() {
            let _ = write!(out, "{:.*}", self.decimals, self.value);
        } else {
            self.value.write_to(out);
        }
    }
}

/// A histogram's state: cumulative counts per upper bound (each counts the observations
/// `<=` its bound), the sum of all observations and their count (the `+Inf` bucket).
#[derive(Debug, Clone, Copy)]
pub struct Buckets<'a> {
    /// Finite, ascending upper bounds; the `+Inf` bucket is written from `count`.
    pub bounds: &'a [f64],
    /// One per bound.
    pub cumulative_counts: &'a [u64],
    pub sum: f64,
    pub count: u64,
}

/// Metric families in the order first named, rendered by [`Exposition::finish`].
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

#[derive(Debug)]
struct Family {
    name: String,
    metric_type: MetricType,
    help: String,
    samples: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Names a family, so its `# HELP` and `# TYPE` are written even without samples; the
    /// first naming of a family fixes its type, help and place.
    pub fn family(&mut self, name: &str, metric_type: MetricType, help: &str) -> &mut Self {
        self.samples_of(name, metric_type, help);
        self
    }

    pub fn counter(
        &mut self,
        name: &str,
        help: &str,
        labels: Labels<'_>,
        value: impl SampleValue,
    ) -> &mut Self {
        self.sample(name, MetricType::Counter, help, labels, value)
    }

    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        labels: Labels<'_>,
        value: impl SampleValue,
    ) -> &mut Self {
        self.sample(name, MetricType::Gauge, help, labels, value)
    }

    /// `name_bucket` per bound and `+Inf`, `name_sum`, `name_count`; `le` follows `labels`.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: Labels<'_>,
        buckets: &Buckets<'_>,
    ) -> &mut Self {
        debug_assert_eq!(buckets.bounds.len(), buckets.cumulative_counts.len());
        let samples = self.samples_of(name, MetricType::Histogram, help);
        let mut bucket = |le: f64, count: u64| {
            let mut le_text = String::new();
            le.write_to(&mut le_text);
            write_sample(samples, name, "_bucket", labels, Some(&le_text), &count);
        };
        for (&bound, &count) in buckets.bounds.iter().zip(buckets.cumulative_counts) {
            bucket(bound, count);
        }
        bucket(f64::INFINITY, buckets.count);
        write_sample(samples, name, "_sum", labels, None, &buckets.sum);
        write_sample(samples, name, "_count", labels, None, &buckets.count);
        self
    }

    /// The text: each family's `# HELP`, `# TYPE` and samples, in the order first named.
    pub fn finish(self) -> String {
        let mut out = String::new();
        for family in self.families {
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&family.help));
            let _ = writeln!(
                out,
                "# TYPE {} {}",
                family.name,
                family.metric_type.as_str()
            );
            out.push_str(&family.samples);
        }
        out
    }

    fn sample(
        &mut self,
        name: &str,
        metric_type: MetricType,
        help: &str,
        labels: Labels<'_>,
        value: impl SampleValue,
    ) -> &mut Self {
        let samples = self.samples_of(name, metric_type, help);
        write_sample(samples, name, "", labels, None, &value);
        self
    }

    fn samples_of(&mut self, name: &str, metric_type: MetricType, help: &str) -> &mut String {
        let at = match self.families.iter().rposition(|family| family.name == name) {
            Some(at) => at,
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    metric_type,
                    help: help.to_owned(),
                    samples: String::new(),
                });
                self.families.len() - 1
            }
        };
        let family = &mut self.families[at];
        debug_assert_eq!(family.metric_type, metric_type, "{name} has one type");
        &mut family.samples
    }
}

fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: Labels<'_>,
    le: Option<&str>,
    value: &dyn SampleValue,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut pairs = labels.iter().copied().chain(le.map(|le| ("le", le)));
    if let Some((label, value)) = pairs.next() {
        out.push('{');
        write_label(out, label, value);
        for (label, value) in pairs {
            out.push(',');
            write_label(out, label, value);
        }
        out.push('}');
    }
    out.push(' ');
    value.write_to(out);
    out.push('\n');
}

fn write_label(out: &mut String, label: &str, value: &str) {
    out.push_str(label);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Help text escapes backslash and newline (not quotes).
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(build: impl FnOnce(&mut Exposition), expected: &str) {
        let mut exposition = Exposition::new();
        build(&mut exposition);
        assert_eq!(exposition.finish(), expected);
    }

    #[test]
    fn counters_and_gauges_without_labels() {
        check(
            |text| {
                text.counter("jobs_total", "Jobs run.", &[], 3u64)
                    .gauge("connected", "1 while connected.", &[], true)
                    .gauge("depth", "Rows waiting.", &[], 2.0)
                    .gauge("oldest_seconds", "Age.", &[], 1.5)
                    .gauge("last_seq", "Newest.", &[], -7i64)
                    .gauge(
                        "busy",
                        "Time.",
                        &[],
                        Fixed {
                            value: 0.25,
                            decimals: 6,
                        },
                    );
            },
            "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 3\n\
             # HELP connected 1 while connected.\n# TYPE connected gauge\nconnected 1\n\
             # HELP depth Rows waiting.\n# TYPE depth gauge\ndepth 2\n\
             # HELP oldest_seconds Age.\n# TYPE oldest_seconds gauge\noldest_seconds 1.5\n\
             # HELP last_seq Newest.\n# TYPE last_seq gauge\nlast_seq -7\n\
             # HELP busy Time.\n# TYPE busy gauge\nbusy 0.250000\n",
        );
    }

    #[test]
    fn a_family_is_described_once_and_kept_together() {
        check(
            |text| {
                text.family("frames_total", MetricType::Counter, "Frames read.")
                    .gauge("up", "Up.", &[("scanner", "a")], false)
                    .counter(
                        "frames_total",
                        "Frames read.",
                        &[("scanner", "a"), ("result", "ok")],
                        4u64,
                    )
                    .gauge("up", "Up.", &[("scanner", "b")], true)
                    .counter(
                        "frames_total",
                        "Frames read.",
                        &[("scanner", "b"), ("result", "ok")],
                        0u64,
                    );
            },
            "# HELP frames_total Frames read.\n# TYPE frames_total counter\n\
             frames_total{scanner=\"a\",result=\"ok\"} 4\n\
             frames_total{scanner=\"b\",result=\"ok\"} 0\n\
             # HELP up Up.\n# TYPE up gauge\nup{scanner=\"a\"} 0\nup{scanner=\"b\"} 1\n",
        );
    }

    #[test]
    fn a_family_without_samples_is_still_described() {
        check(
            |text| {
                text.family("webhooks_total", MetricType::Counter, "Webhooks.");
            },
            "# HELP webhooks_total Webhooks.\n# TYPE webhooks_total counter\n",
        );
        check(|_| {}, "");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        check(
            |text| {
                text.counter(
                    "events_total",
                    "Back\\slash and\nnewline, \"quotes\" kept.",
                    &[("type", "a\\b \"c\"\nd é")],
                    1u64,
                );
            },
            "# HELP events_total Back\\\\slash and\\nnewline, \"quotes\" kept.\n\
             # TYPE events_total counter\n\
             events_total{type=\"a\\\\b \\\"c\\\"\\nd é\"} 1\n",
        );
    }

    #[test]
    fn histograms_write_buckets_sum_and_count() {
        let bounds = [0.001, 0.0025, 1.0, 30.0];
        check(
            |text| {
                text.histogram(
                    "latency_seconds",
                    "Latency.",
                    &[],
                    &Buckets {
                        bounds: &bounds,
                        cumulative_counts: &[0, 1, 2, 2],
                        sum: 0.503,
                        count: 3,
                    },
                );
            },
            "# HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n\
             latency_seconds_bucket{le=\"0.001\"} 0\n\
             latency_seconds_bucket{le=\"0.0025\"} 1\n\
             latency_seconds_bucket{le=\"1\"} 2\n\
             latency_seconds_bucket{le=\"30\"} 2\n\
             latency_seconds_bucket{le=\"+Inf\"} 3\n\
             latency_seconds_sum 0.503\n\
             latency_seconds_count 3\n",
        );
        check(
            |text| {
                let empty = Buckets {
                    bounds: &bounds[..1],
                    cumulative_counts: &[0],
                    sum: 0.0,
                    count: 0,
                };
                text.histogram("wait_seconds", "Wait.", &[("queue", "a")], &empty)
                    .histogram("wait_seconds", "Wait.", &[("queue", "b")], &empty);
            },
            "# HELP wait_seconds Wait.\n# TYPE wait_seconds histogram\n\
             wait_seconds_bucket{queue=\"a\",le=\"0.001\"} 0\n\
             wait_seconds_bucket{queue=\"a\",le=\"+Inf\"} 0\n\
             wait_seconds_sum{queue=\"a\"} 0\n\
             wait_seconds_count{queue=\"a\"} 0\n\
             wait_seconds_bucket{queue=\"b\",le=\"0.001\"} 0\n\
             wait_seconds_bucket{queue=\"b\",le=\"+Inf\"} 0\n\
             wait_seconds_sum{queue=\"b\"} 0\n\
             wait_seconds_count{queue=\"b\"} 0\n",
        );
    }

    #[test]
    fn special_floats_are_spelled_as_the_format_wants() {
        let value = |v: &dyn SampleValue| {
            let mut out = String::new();
            v.write_to(&mut out);
            out
        };
        assert_eq!(value(&f64::NAN), "NaN");
        assert_eq!(value(&f64::INFINITY), "+Inf");
        assert_eq!(value(&f64::NEG_INFINITY), "-Inf");
        assert_eq!(value(&0.0), "0");
        assert_eq!(value(&1e-7), "0.0000001");
        assert_eq!(
            value(&Fixed {
                value: f64::INFINITY,
                decimals: 6
            }),
            "+Inf"
        );
        assert_eq!(
            value(&Fixed {
                value: 0.0,
                decimals: 6
            }),
            "0.000000"
        );
        assert_eq!(value(&usize::MAX), usize::MAX.to_string());
    }
}
