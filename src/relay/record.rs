//! One record per request: filled in as the request goes (its group, the deployments tried, the answer) and
//! emitted once, at the very end, as the request's log line. A stream's record travels with its body and is
//! emitted when the stream ends, with the stream's real outcome.

use std::sync::Arc;
use std::time::Instant;

use axum::response::Response;

use crate::routing::{Deployment, ModelGroup};

#[derive(Debug)]
pub struct RequestRecord {
    route: &'static str,
    started: Instant,
    group: Option<Arc<ModelGroup>>,
    /// The deployment of the last attempt: after failover, the one that gave the answer.
    deployment: Option<Arc<Deployment>>,
    /// Attempts sent upstream; 0 for a request refused, or answered, by the router itself.
    attempts: u32,
}

/// How a request ended, for its record: `status` is the HTTP status the answer stands for (for a stream
/// that ended in an in-band error, that error's status, not the 200 already sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub status: u16,
    /// For streams: how the stream ended (`complete`, `upstream stream stalled`, ...).
    pub outcome: Option<&'static str>,
}

impl RequestRecord {
    pub fn new(route: &'static str) -> Self {
        Self {
            route,
            started: Instant::now(),
            group: None,
            deployment: None,
            attempts: 0,
        }
    }

    pub fn route(&self) -> &'static str {
        self.route
    }

    pub fn group(&mut self, group: &Arc<ModelGroup>) {
        self.group = Some(group.clone());
    }

    /// An attempt on `deployment` is about to be sent.
    pub fn attempt(&mut self, deployment: &Arc<Deployment>) {
        self.deployment = Some(deployment.clone());
        self.attempts += 1;
    }

    /// The deployment chosen without an attempt (count_tokens answered locally, Claude Code's pre-warm).
    pub fn chose(&mut self, deployment: &Arc<Deployment>) {
        self.deployment = Some(deployment.clone());
    }

    /// Emits the record of an answer that is complete once its headers are sent, and passes it on.
    pub fn answered(self, response: Response) -> Response {
        self.emit(Ending {
            status: response.status().as_u16(),
            outcome: None,
        });
        response
    }

    /// Emits the record: the request's one log line.
    pub fn emit(self, ending: Ending) {
        let group = self.group.as_ref().map_or("-", |g| g.name.as_str());
        let deployment = self.deployment.as_ref().map_or("-", |d| d.name.as_str());
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        match ending.outcome {
            None => tracing::info!(
                route = self.route,
                group,
                deployment,
                status = ending.status,
                streamed = false,
                attempts = self.attempts,
                elapsed_ms,
                "request finished"
            ),
            Some(outcome) => tracing::info!(
                route = self.route,
                group,
                deployment,
                status = ending.status,
                streamed = true,
                outcome,
                attempts = self.attempts,
                elapsed_ms,
                "request finished"
            ),
        }
    }
}
