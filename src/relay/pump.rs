//! The body pump of a streamed answer: upstream chunks go through the request's [`StreamProcessor`] and out
//! to the client as soon as they arrive, batched per wake-up. Nothing waits for the whole stream. The pump
//! also keeps the stream's two timers (keep-alive and stall) and ends the client's answer at the final event.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;

use super::processor::{StreamEnd, StreamProcessor};
use super::record::{Ending, RequestRecord};
use crate::protocol::convert::stream::StreamFailure;
use crate::upstream::Redactor;

/// A converted stream whose upstream says nothing for this long gets a keep-alive (long reasoning phases).
const KEEP_ALIVE_AFTER: Duration = Duration::from_secs(15);

/// Upstream body chunks (data frames; an error mid-body is an `Err` item). Dropping it closes the upstream
/// connection.
pub type UpstreamChunks = http_body_util::BodyDataStream<crate::upstream::UpstreamBody>;

/// The client's response body: the head already read while waiting for the first event, then the rest.
/// It ends as soon as the processor has produced the stream's last event; dropping it drops the upstream.
pub struct RelayBody<P: StreamProcessor> {
    head: Option<Bytes>,
    /// Always `Some` until the body is dropped.
    upstream: Option<UpstreamChunks>,
    processor: P,
    /// Fires when the upstream has been silent for [`KEEP_ALIVE_AFTER`]; `None` when the processor sends no
    /// keep-alives.
    silence: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Fires when the upstream has been silent for `idle_limit`: the stream is then given up.
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_limit: Duration,
    /// When the upstream last sent bytes; the timers above compare against it when they fire.
    last_upstream: Instant,
    last_keep_alive: Instant,
    /// Emitted when the body is dropped: the stream is over, one way or another.
    record: Option<RequestRecord>,
    /// The first content delta has not been relayed yet: the record's time to first token is still open.
    awaiting_first_token: bool,
    /// The deployment's API key, scrubbed from everything the client gets: an upstream error event may
    /// quote it, and a converted one quotes upstream text.
    redactor: Option<Arc<Redactor>>,
}

impl<P: StreamProcessor> RelayBody<P> {
    pub fn new(
        head: Bytes,
        upstream: UpstreamChunks,
        processor: P,
        idle_limit: Duration,
        mut record: RequestRecord,
        redactor: Option<Arc<Redactor>>,
    ) -> Self {
        // The head (the events read up to the commit boundary) goes out at once.
        let awaiting_first_token = !processor.content_started();
        if !awaiting_first_token {
            record.first_token();
        }
        let silence = (!processor.keep_alive().is_empty()).then(|| Box::pin(tokio::time::sleep(KEEP_ALIVE_AFTER)));
        Self {
            head: Some(head),
            upstream: Some(upstream),
            processor,
            silence,
            idle: Box::pin(tokio::time::sleep(idle_limit)),
            idle_limit,
            last_upstream: Instant::now(),
            last_keep_alive: Instant::now(),
            record: Some(record),
            awaiting_first_token,
            redactor,
        }
    }

    fn done(&self) -> bool {
        self.processor.end().is_some()
    }
}

impl<P: StreamProcessor + Unpin> Stream for RelayBody<P> {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let out = ready!(this.poll_output(cx));
        // Once per write, not per upstream chunk: what a write holds is whole events, so a key is never
        // split between two of them.
        Poll::Ready(out.map(|bytes| {
            Ok(match &this.redactor {
                Some(redactor) => redactor.redact(bytes),
                None => bytes,
            })
        }))
    }
}

impl<P: StreamProcessor + Unpin> RelayBody<P> {
    /// The next bytes for the client, before redaction.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self;
        if let Some(head) = this.head.take().filter(|h| !h.is_empty()) {
            return Poll::Ready(Some(head));
        }
        if this.done() {
            return Poll::Ready(None);
        }
        // Everything the upstream has ready goes out in one write: one syscall for a burst of events
        // instead of one per event, and no waiting for more.
        let mut batch = Batch::default();
        let Some(upstream) = &mut this.upstream else {
            return Poll::Ready(None);
        };
        // When the upstream last sent bytes, for the timers: read once per wake-up, not once per chunk.
        let mut received = false;
        let out = loop {
            match Pin::new(&mut *upstream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    received = true;
                    batch.push(this.processor.chunk(chunk));
                    // The time to first token; after it, a flag check per chunk.
                    if this.awaiting_first_token && this.processor.content_started() {
                        this.awaiting_first_token = false;
                        if let Some(record) = &mut this.record {
                            record.first_token();
                        }
                    }
                    // The last event ends the client's answer now, whatever the upstream does next.
                    if batch.len() >= MAX_BATCH || this.processor.end().is_some() {
                        break Some(batch.into_bytes());
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    let message = format!("upstream stream failed: {}", crate::upstream::describe(&*error));
                    batch.push(this.processor.failed(StreamFailure::Upstream, &message));
                    break Some(batch.into_bytes());
                }
                Poll::Ready(None) => {
                    batch.push(this.processor.eof());
                    break (!batch.is_empty()).then(|| batch.into_bytes());
                }
                Poll::Pending if !batch.is_empty() => break Some(batch.into_bytes()),
                Poll::Pending => {
                    if received {
                        this.last_upstream = Instant::now();
                    }
                    return this.poll_timers(cx);
                }
            }
        };
        if received {
            this.last_upstream = Instant::now();
        }
        Poll::Ready(out)
    }
}

/// Output collected during one poll; a single piece is passed on without a copy.
#[derive(Default)]
struct Batch {
    first: Bytes,
    more: Vec<u8>,
}

impl Batch {
    fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
        } else if self.first.is_empty() {
            self.first = bytes;
        } else {
            if self.more.is_empty() {
                // Sized once for a burst: grown from the first piece, the batch was reallocated several
                // times a write.
                self.more
                    .reserve(BATCH_ROOM.max(2 * (self.first.len() + bytes.len())).min(MAX_BATCH));
                self.more.extend_from_slice(&self.first);
            }
            self.more.extend_from_slice(&bytes);
        }
    }

    fn len(&self) -> usize {
        self.more.len().max(self.first.len())
    }

    fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    fn into_bytes(self) -> Bytes {
        if self.more.is_empty() {
            self.first
        } else {
            self.more.into()
        }
    }
}

/// A poll returns at most this much, so a fast upstream cannot make one write grow without bound.
const MAX_BATCH: usize = 64 * 1024;
/// The smallest buffer of a batch of several pieces: a burst of a few dozen events.
const BATCH_ROOM: usize = 8 * 1024;

impl<P: StreamProcessor + Unpin> RelayBody<P> {
    /// The upstream has nothing ready: give up on a stall, or send a keep-alive during a long silence.
    /// The timers are re-armed lazily from `last_upstream`, not reset on every chunk.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        while self.idle.as_mut().poll(cx).is_ready() {
            let silent_until = self.last_upstream + self.idle_limit;
            if Instant::now() >= silent_until {
                let message = format!("upstream sent nothing for {} s", self.idle_limit.as_secs_f64());
                let out = self.processor.failed(StreamFailure::Timeout, &message);
                return Poll::Ready(Some(out));
            }
            self.idle.as_mut().reset(silent_until.into());
        }
        if let Some(silence) = &mut self.silence {
            while silence.as_mut().poll(cx).is_ready() {
                let due = self.last_upstream.max(self.last_keep_alive) + KEEP_ALIVE_AFTER;
                if Instant::now() >= due {
                    self.last_keep_alive = Instant::now();
                    silence.as_mut().reset((self.last_keep_alive + KEEP_ALIVE_AFTER).into());
                    return Poll::Ready(Some(self.processor.keep_alive()));
                }
                silence.as_mut().reset(due.into());
            }
        }
        Poll::Pending
    }
}

/// After a complete stream, how long the upstream may take to end its body so that its connection goes back
/// to the pool; an upstream that holds the connection open longer is cut off.
const RELEASE_GRACE: Duration = Duration::from_secs(1);
/// What the upstream may still send after its final event before it is cut off.
const RELEASE_MAX_BYTES: usize = 64 * 1024;

/// Lets a complete stream's upstream connection be reused: its body usually ends right after the final
/// event, often within the same read. Never delays the client, whose answer has already ended.
fn release(mut upstream: UpstreamChunks) {
    use futures_util::{FutureExt, StreamExt};
    if let Some(None) = upstream.next().now_or_never() {
        return; // ended: the connection is back in the pool
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let drain = async {
            let mut left = RELEASE_MAX_BYTES;
            while let Some(Ok(chunk)) = upstream.next().await {
                match left.checked_sub(chunk.len()) {
                    Some(rest) => left = rest,
                    None => return,
                }
            }
        };
        let _ = tokio::time::timeout(RELEASE_GRACE, drain).await;
    });
}

impl<P: StreamProcessor> Drop for RelayBody<P> {
    fn drop(&mut self) {
        // Any other end (a failure, the client leaving) drops the upstream at once.
        if self.processor.end() == Some(StreamEnd::COMPLETE)
            && let Some(upstream) = self.upstream.take()
        {
            release(upstream);
        }
        // 499 (nginx's "client closed request"): the client went away before the stream ended.
        let end = self
            .processor
            .end()
            .unwrap_or(StreamEnd::new(499, "client disconnected"));
        if let Some(mut record) = self.record.take() {
            record.usage(self.processor.usage());
            record.emit(Ending {
                status: end.status,
                outcome: Some(end.outcome),
            });
        }
    }
}
