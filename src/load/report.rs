//! What a run did, phase by phase: operations, rate, latency percentiles, errors by code, the
//! occupancy after each phase and each expectation's outcome; as JSON or as text.

use std::collections::BTreeMap;

use super::LoadError;
use super::stream::Server;
use crate::service::proto as pb;

/// What one phase did.
#[derive(Debug, Default, serde::Serialize)]
pub struct PhaseReport {
    pub phase: String,
    pub operations: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency_ms: BTreeMap<String, f64>,
    pub errors: BTreeMap<String, u64>,
    /// Occupancy after the phase, summed over targets: "client ESTABLISHED" → count (non-zero).
    pub occupancy: BTreeMap<String, i64>,
    /// For expect phases: what was checked and the value found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    pub ok: bool,
}

/// The whole run.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub scenario: String,
    pub phases: Vec<PhaseReport>,
    pub ok: bool,
}

/// p50, p90, p99 and max of latencies in µs, as ms; empty for none.
pub(super) fn percentiles(latencies: &mut [u32]) -> BTreeMap<String, f64> {
    latencies.sort_unstable();
    let at = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    if latencies.is_empty() {
        return BTreeMap::new();
    }
    [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)]
        .into_iter()
        .map(|(k, p)| (k.to_string(), at(p)))
        .collect()
}

/// Endpoints by side and state, summed over the servers (non-zero only).
pub(super) async fn occupancy(servers: &mut [Server]) -> Result<BTreeMap<String, i64>, LoadError> {
    let mut all = BTreeMap::new();
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
            *all.entry(format!("{side} {state}")).or_default() += o.count;
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
        out += &format!(
            "{:>2}. {:<9} {:>8} ops in {:>7.3} s = {:>9.0}/s",
            i + 1,
            p.phase,
            p.operations,
            p.seconds,
            p.per_second
        );
        if let [Some(p50), Some(p90), Some(p99), Some(max)] =
            ["p50", "p90", "p99", "max"].map(|k| p.latency_ms.get(k))
        {
            out += &format!("  latency ms p50 {p50:.3} p90 {p90:.3} p99 {p99:.3} max {max:.3}");
        }
        out += "\n";
        if !p.errors.is_empty() {
            out += &format!("    errors: {}\n", joined(&p.errors));
        }
        if let Some(c) = &p.check {
            out += &format!("    {} {c}\n", if p.ok { "ok:" } else { "FAILED:" });
        }
        if !p.occupancy.is_empty() {
            out += &format!("    after: {}\n", joined(&p.occupancy));
        }
    }
    out += if report.ok {
        "all expectations held\n"
    } else {
        "SOME EXPECTATIONS FAILED\n"
    };
    out
}
