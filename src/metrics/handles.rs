//! Metric handles held by a config snapshot: one [`GroupMetrics`] per model group, with one
//! [`MemberMetrics`] per (group, deployment) pair, built when the snapshot is built. A handle is a shared
//! pointer to its series' atomics, so recording costs what the atomics cost.
//!
//! Series are keyed by their labels, and labels are names from the config: a handle built by a later
//! snapshot for the same group and deployment is the same series, so a reload continues every count. A
//! group that keeps its members also keeps its `GroupMetrics` (like the balancer state), so the series it
//! resolved on first use stay resolved. A deployment removed by a reload keeps its last series: counters that
//! vanish and come back at zero when a name is re-added would read as resets, requests still running on the
//! old snapshot keep counting into them, and the number of names a config ever had is small and operator
//! controlled. Its `deployment_state` series go at once (they are rebuilt from the live snapshot on each
//! scrape).

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::{
    Families, HistogramFamily, MemberLabels, RequestDurationLabels, RequestLabels, TokenLabels, UpstreamLabels,
};
use crate::protocol::Protocol;
use crate::protocol::hub::Usage;

/// The status codes whose series are created on first use and then reached without a lookup; any other
/// code (rare by nature) costs a map lookup in its family.
const COMMON_CODES: [u16; 18] = [
    200, 400, 401, 403, 404, 405, 408, 413, 422, 429, 499, 500, 501, 502, 503, 504, 520, 529,
];

fn common_slot(code: u16) -> Option<usize> {
    COMMON_CODES.iter().position(|c| *c == code)
}

/// Label sets that carry a status code.
pub(crate) trait WithStatus: Clone + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static {
    fn with_status(&self, code: u16) -> Self;
}

impl WithStatus for RequestLabels {
    fn with_status(&self, code: u16) -> Self {
        Self { code, ..self.clone() }
    }
}

impl WithStatus for UpstreamLabels {
    fn with_status(&self, status: u16) -> Self {
        Self { status, ..self.clone() }
    }
}

/// A counter per status code, its series created when the code is first seen (most codes never are).
pub(crate) struct ByStatus<L: WithStatus> {
    family: Family<L, Counter>,
    base: L,
    slots: [OnceLock<Counter>; COMMON_CODES.len()],
}

impl<L: WithStatus> ByStatus<L> {
    fn new(family: &Family<L, Counter>, base: L) -> Self {
        Self {
            family: family.clone(),
            base,
            slots: Default::default(),
        }
    }

    pub fn inc(&self, code: u16) {
        match common_slot(code) {
            Some(slot) => {
                self.slots[slot]
                    .get_or_init(|| self.family.get_or_create_owned(&self.base.with_status(code)))
                    .inc();
            }
            None => {
                self.family.get_or_create(&self.base.with_status(code)).inc();
            }
        }
    }
}

/// A series created on first use: families whose series would mostly stay empty (a histogram per
/// ingress and stream kind, a TTFT histogram for a group that never streams) add no lines until then.
pub struct LazySeries<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static> {
    family: HistogramFamily<L>,
    labels: L,
    series: OnceLock<Histogram>,
}

impl<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static> LazySeries<L> {
    fn new(family: &HistogramFamily<L>, labels: L) -> Self {
        Self {
            family: family.clone(),
            labels,
            series: OnceLock::new(),
        }
    }

    pub fn observe(&self, value: f64) {
        self.series
            .get_or_init(|| self.family.get_or_create_owned(&self.labels))
            .observe(value);
    }
}

/// The five token types, in the order of [`MemberMetrics::tokens`].
pub const TOKEN_TYPES: [&str; 5] = ["input", "output", "cache_read", "cache_write", "reasoning"];

/// Adds `usage` to counters by [`TOKEN_TYPES`], leaving the zero counts alone.
pub fn count_tokens(counters: &[Counter; 5], usage: &Usage) {
    let counts = [
        usage.input,
        usage.output,
        usage.cached,
        usage.cache_write,
        usage.reasoning,
    ];
    for (counter, count) in counters.iter().zip(counts) {
        if count > 0 {
            counter.inc_by(count);
        }
    }
}

/// The handles of one deployment as a member of one group.
pub struct MemberMetrics {
    pub(crate) upstream_requests: ByStatus<UpstreamLabels>,
    pub(crate) upstream_duration: LazySeries<MemberLabels>,
    pub(crate) ttft: LazySeries<MemberLabels>,
    /// By [`TOKEN_TYPES`].
    pub tokens: [Counter; 5],
    pub retries: Counter,
    pub inflight: Gauge,
}

impl MemberMetrics {
    fn new(families: &Families, group: &str, deployment: &str) -> Self {
        let labels = MemberLabels {
            group: group.to_owned(),
            deployment: deployment.to_owned(),
        };
        let token = |token_type| {
            families.tokens.get_or_create_owned(&TokenLabels {
                group: group.to_owned(),
                deployment: deployment.to_owned(),
                token_type,
            })
        };
        Self {
            upstream_requests: ByStatus::new(
                &families.upstream_requests,
                UpstreamLabels {
                    group: group.to_owned(),
                    deployment: deployment.to_owned(),
                    status: 0,
                },
            ),
            upstream_duration: LazySeries::new(&families.upstream_duration, labels.clone()),
            ttft: LazySeries::new(&families.ttft, labels.clone()),
            tokens: TOKEN_TYPES.map(token),
            retries: families.retries.get_or_create_owned(&labels),
            inflight: families.inflight.get_or_create_owned(&labels),
        }
    }

    /// One attempt's answer status (an HTTP status, or the 502/504 the router stands in with).
    pub fn upstream_answered(&self, status: u16) {
        self.upstream_requests.inc(status);
    }
}

/// The client-facing handles of one group for one ingress protocol.
pub struct IngressMetrics {
    requests: ByStatus<RequestLabels>,
    /// Not streamed, streamed; most groups see only one ingress and one kind.
    durations: [LazySeries<RequestDurationLabels>; 2],
}

impl IngressMetrics {
    fn new(families: &Families, ingress: &'static str, group: &str) -> Self {
        Self {
            requests: ByStatus::new(
                &families.requests,
                RequestLabels {
                    ingress,
                    group: group.to_owned(),
                    code: 0,
                },
            ),
            durations: [false, true].map(|stream| {
                let labels = RequestDurationLabels {
                    ingress,
                    group: group.to_owned(),
                    stream: if stream { "true" } else { "false" },
                };
                LazySeries::new(&families.request_duration, labels)
            }),
        }
    }

    pub fn answered(&self, code: u16) {
        self.requests.inc(code);
    }

    pub(crate) fn duration(&self, stream: bool) -> &LazySeries<RequestDurationLabels> {
        &self.durations[usize::from(stream)]
    }
}

/// The handles of one model group: its client-facing series per ingress, and its members'.
pub struct GroupMetrics {
    ingress: [IngressMetrics; 4],
    /// In the order of the group's members.
    pub members: Vec<MemberMetrics>,
}

impl GroupMetrics {
    pub(crate) fn new(families: &Families, group: &str, members: &[&str]) -> Self {
        Self {
            ingress: Protocol::ALL.map(|p| IngressMetrics::new(families, p.ingress(), group)),
            members: members
                .iter()
                .map(|deployment| MemberMetrics::new(families, group, deployment))
                .collect(),
        }
    }

    pub fn ingress(&self, client: Protocol) -> &IngressMetrics {
        &self.ingress[client.index()]
    }
}

impl std::fmt::Debug for GroupMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupMetrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn handles_of_the_same_names_share_one_series() {
        let metrics = Metrics::new();
        let a = GroupMetrics::new(&metrics.families, "g", &["d"]);
        let b = GroupMetrics::new(&metrics.families, "g", &["d"]);
        a.members[0].tokens[0].inc_by(3);
        b.members[0].tokens[0].inc_by(4);
        assert_eq!(b.members[0].tokens[0].get(), 7);
        a.ingress(Protocol::OpenAi).answered(200);
        b.ingress(Protocol::OpenAi).answered(200);
        b.ingress(Protocol::OpenAi).answered(418);
        a.ingress(Protocol::OpenAi).answered(418);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        assert!(
            text.contains(r#"llmrouter_requests_total{ingress="chat",group="g",code="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"llmrouter_requests_total{ingress="chat",group="g",code="418"} 2"#),
            "{text}"
        );
    }
}
