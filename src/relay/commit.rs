//! The commit boundary of a stream. The client's status line goes out only once the upstream's first event
//! shows that the stream is not an error: some hosts answer 200 and then send an error event, and until the
//! first event is in, any failure is still a failed attempt that can fail over. After it, failures can only
//! be reported in-band.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::failure::Failure;
use super::processor::StreamProcessor;
use super::pump::{RelayBody, UpstreamChunks};
use super::record::RequestRecord;
use crate::routing::Deployment;
use crate::upstream::{self, UpstreamResponse};

/// A stream whose first event was good: the client's answer, once it is given the request's record (which
/// the body emits when the stream ends).
pub struct CommittedStream {
    respond: Box<dyn FnOnce(RequestRecord) -> Response + Send>,
}

impl CommittedStream {
    pub fn respond(self, record: RequestRecord) -> Response {
        (self.respond)(record)
    }
}

/// Reads the upstream stream up to its first complete event, by `deadline`; an error there (a broken
/// connection, silence, an error event, an event over the size cap) is a failed attempt. What the client
/// gets is scrubbed of key `key` of the deployment's pool.
pub async fn start_stream<P: StreamProcessor + Unpin>(
    deployment: &Deployment,
    key: usize,
    response: UpstreamResponse,
    mut processor: P,
    deadline: tokio::time::Instant,
    headers: HeaderMap,
) -> Result<CommittedStream, Failure> {
    let mut upstream = UpstreamChunks::new(response.into_body());
    let head = read_first_event(&mut upstream, &mut processor, deadline).await?;
    if let Some(mut error) = processor.early_error() {
        error.body = deployment.redact(error.body);
        return Err(Failure::error_event(error));
    }
    if !processor.started() {
        // The stream ended before a first event: an event over the size cap.
        let message = "upstream's first stream event exceeds router_settings.max_event_size_mb".to_owned();
        return Err(Failure::unreachable(StatusCode::BAD_GATEWAY, message));
    }
    let idle = deployment.spec.timeouts.stream_idle;
    let redactor = deployment.redactor(key);
    let respond = move |record| {
        let mut answer = Response::new(Body::from_stream(RelayBody::new(
            head, upstream, processor, idle, record, redactor,
        )));
        let h = answer.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.extend(headers);
        answer
    };
    Ok(CommittedStream {
        respond: Box::new(respond),
    })
}

/// Reads upstream chunks until the first complete event; returns the client bytes read so far.
async fn read_first_event(
    upstream: &mut UpstreamChunks,
    processor: &mut impl StreamProcessor,
    deadline: tokio::time::Instant,
) -> Result<Bytes, Failure> {
    // Usually the first chunk holds the first event, and often many more: it goes on as it came, and only an
    // event split over several chunks is joined.
    let mut head = Bytes::new();
    while !processor.started() && processor.end().is_none() {
        match tokio::time::timeout_at(deadline, upstream.next()).await {
            Ok(Some(Ok(chunk))) => {
                let out = processor.chunk(chunk);
                head = if head.is_empty() {
                    out
                } else {
                    [head, out].concat().into()
                };
            }
            Ok(Some(Err(e))) => {
                let message = format!(
                    "upstream stream failed before its first event: {}",
                    upstream::describe(&*e)
                );
                return Err(Failure::unreachable(StatusCode::BAD_GATEWAY, message));
            }
            Ok(None) => {
                let message = "upstream closed the stream without sending an event".to_owned();
                return Err(Failure::unreachable(StatusCode::BAD_GATEWAY, message));
            }
            Err(_) => {
                let message = "upstream sent no event in time".to_owned();
                return Err(Failure::unreachable(StatusCode::GATEWAY_TIMEOUT, message));
            }
        }
    }
    Ok(head)
}
