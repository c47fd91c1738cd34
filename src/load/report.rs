//! What a run did, phase by phase: operations, rate, latency percentiles, errors by code, the
//! occupancy after each phase and each expectation's outcome; as JSON or as text.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::LoadError;
use super::stream::Server;
use crate::service::proto as pb;

/// What one phase did.
#[derive(Debug, Default, serde::Serialize)]
pub struct PhaseReport {
    pub phase: String,
    /// Commands answered.
    pub operations: u64,
    /// Wall time the phase took.
    pub seconds: f64,
    /// Commands answered per second of wall time.
    pub per_second: f64,
    /// For a phase with a rate: the rate asked (scaled) and achieved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    pub latency_ms: BTreeMap<String, f64>,
    /// Opens refused by a limit, by reason ("ports_exhausted"): expected under load.
    pub refused: BTreeMap<String, u64>,
    /// Every other error, by gRPC code as the proto names it ("INVALID_ARGUMENT").
    pub errors: BTreeMap<String, u64>,
    /// The phase's `errors:` budget, if it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_allowed: Option<u64>,
    /// More errors than the budget: the phase, and the run, failed.
    pub errors_over_budget: bool,
    /// Occupancy after the phase, summed over targets: side → state → count (non-zero only).
    pub occupancy: BTreeMap<String, BTreeMap<String, i64>>,
    /// For expect phases: what was checked and the value found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    pub ok: bool,
}

/// A paced phase's rate: operations (opens, for churn) per second of the clock it ran on.
#[derive(Debug, Default, serde::Serialize)]
pub struct Rate {
    pub asked: f64,
    pub achieved: f64,
    /// The time the phase took on its clock: virtual time moved, or real time.
    pub clock_seconds: f64,
}

/// The whole run.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub scenario: String,
    pub phases: Vec<PhaseReport>,
    pub ok: bool,
}

/// p50, p90, p99 and max of latencies recorded in µs, as ms; empty for none.
pub(super) fn percentiles(latency_us: &Histogram<u64>) -> BTreeMap<String, f64> {
    if latency_us.is_empty() {
        return BTreeMap::new();
    }
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)]
        .into_iter()
        .map(|(k, q)| {
            let us = if q == 100.0 {
                latency_us.max()
            } else {
                latency_us.value_at_percentile(q)
            };
            (k.to_string(), us as f64 / 1000.0)
        })
        .collect()
}

/// Endpoints by side and state, summed over the servers (non-zero only): "client" →
/// "TIME_WAIT" → count, states named as the proto does without its prefix.
pub(super) async fn occupancy(
    servers: &mut [Server],
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, LoadError> {
    let mut all: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for s in servers.iter_mut() {
        let stats = s.stats().await?;
        for o in stats.occupancy.iter().filter(|o| o.count != 0) {
            let side = match pb::Side::try_from(o.side) {
                Ok(pb::Side::Client) => "client",
                Ok(pb::Side::Server) => "server",
                _ => "?",
            };
            let state = pb::State::try_from(o.state).map_or("?".to_string(), |s| {
                s.as_str_name().trim_start_matches("STATE_").to_string()
            });
            *all.entry(side.to_string())
                .or_default()
                .entry(state)
                .or_default() += o.count;
        }
    }
    Ok(all)
}

fn joined<V: std::fmt::Display>(m: &BTreeMap<String, V>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as text, a block per phase.
pub fn render(report: &Report) -> String {
    let mut out = format!("scenario {}\n", report.scenario);
    for (i, p) in report.phases.iter().enumerate() {
        let mut line = format!("{:>2}. {:<9}", i + 1, p.phase);
        // Expect and hold phases send no commands: no count, no rate.
        if p.operations > 0 {
            line += &format!(
                " {:>8} ops in {:>7.3} s = {:>7}/s",
                p.operations,
                p.seconds,
                format!("{:.0}", p.per_second)
            );
        }
        if let Some(r) = &p.rate {
            line += &format!(
                "  rate {} asked, {} achieved over {:.1} s",
                short(r.asked),
                short(r.achieved),
                r.clock_seconds
            );
        }
        if let [Some(p50), Some(p90), Some(p99), Some(max)] =
            ["p50", "p90", "p99", "max"].map(|k| p.latency_ms.get(k))
        {
            line += &format!("  latency ms p50 {p50:.3} p90 {p90:.3} p99 {p99:.3} max {max:.3}");
        }
        out += line.trim_end();
        out += "\n";
        if !p.refused.is_empty() {
            out += &format!("    refused: {}\n", joined(&p.refused));
        }
        if !p.errors.is_empty() {
            let budget = match (p.errors_allowed, p.errors_over_budget) {
                (_, true) => format!(
                    " — FAILED: more than the {} the phase allows (errors: N)",
                    p.errors_allowed.unwrap_or(0)
                ),
                (Some(n), false) => format!(" (within the {n} allowed)"),
                (None, false) => String::new(),
            };
            out += &format!("    errors: {}{budget}\n", joined(&p.errors));
        }
        if let Some(c) = &p.check {
            out += &format!("    {} {c}\n", if p.ok { "ok:" } else { "FAILED:" });
        }
        if !p.occupancy.is_empty() {
            let sides: Vec<String> = p
                .occupancy
                .iter()
                .map(|(side, states)| format!("{side} {}", joined(states)))
                .collect();
            out += &format!("    after: {}\n", sides.join("; "));
        }
    }
    out += if report.ok {
        "all expectations held, no unexpected errors\n"
    } else {
        "RUN FAILED: an expectation failed or a phase had unexpected errors\n"
    };
    out
}

/// A rate as a reader wants it: 0.5/s, 15/s, 999.9/s, 20000/s.
fn short(x: f64) -> String {
    let digits = if x >= 100.0 { 0 } else { 3 };
    let text = format!("{x:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_without_needless_decimals() {
        assert_eq!(short(0.5), "0.5/s");
        assert_eq!(short(15.0), "15/s");
        assert_eq!(short(9.999), "9.999/s");
        assert_eq!(short(999.94), "1000/s");
        assert_eq!(short(20_000.0), "20000/s");
    }
}
