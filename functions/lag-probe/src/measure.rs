//! Measuring one ordered Region pair: write a canary in the source replica and, from the same
//! moment, read the destination replica (strongly consistent, only the sequence attribute) on the
//! [`PollSchedule`] until a read returns the canary's sequence number.
//!
//! Both instants come from one monotonic process clock ([`Instant`]), so there is no cross-Region
//! clock skew. A call's server-side moment is estimated as the midpoint of its round trip (the
//! NTP assumption of symmetric paths), which removes the network distance between the prober and
//! each Region from the figure:
//!
//! * write time = midpoint of the acknowledged `PutItem` in the source (where DynamoDB accepted it);
//! * visibility time = midpoint of the first `GetItem` in the destination that returns the canary.
//!
//! `lag_ms` is their difference. Reads are started by the clock (every gap, up to
//! [`MAX_READS_IN_FLIGHT`] at once), beginning with the write itself, so the instrument's
//! resolution is the gap between reads (`poll_max`), not a round trip: the figure overstates the
//! true lag by at most one gap, and is off by half the difference of the two calls' request and
//! response legs when those are not symmetric (a slow or queued request). `not_visible_at_ms` is
//! the same figure for the last read that did not see the canary: the true lag lies between the
//! two. A canary that is visible before the write's estimated moment counts as lag 0.

use crate::canary::{self, SEQ_ATTRIBUTE};
use crate::stats::PollSchedule;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use shared::clock::Clock;
use shared::{AwsErrorKind, AwsResultExt, Error};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What one pair needs to be measured.
pub struct PairTarget<'a> {
    pub source: &'a str,
    pub destination: &'a str,
    pub source_dynamodb: &'a Client,
    pub destination_dynamodb: &'a Client,
    pub table: &'a str,
    /// The canary's key in the table's own key attributes.
    pub key: HashMap<String, AttributeValue>,
    pub ttl_attribute: &'a str,
}

/// How samples are taken.
#[derive(Debug, Clone, Copy)]
pub struct SamplePlan {
    pub samples: u32,
    pub schedule: PollSchedule,
    pub ttl_seconds: u64,
    /// Limit on the canary write.
    pub call_timeout: Duration,
    /// No read or write goes past this instant (the run's budget).
    pub run_deadline: Instant,
}

/// One canary that became visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub seq: u64,
    pub lag_ms: u64,
    /// The lag at the last read that did not see the canary yet (none if the first read did).
    pub not_visible_at_ms: Option<u64>,
    pub reads: u32,
}

/// How a sample ended.
#[derive(Debug)]
pub enum SampleOutcome {
    Visible(Sample),
    /// The destination answered, but never with the canary before the timeout (counted from when
    /// the write was sent). `waited_ms`: the last read that did not see it, after the write.
    TimedOut {
        seq: u64,
        waited_ms: u64,
        reads: u32,
        cut_by_run_budget: bool,
        last_error: Option<String>,
    },
    /// The canary could not be written.
    WriteFailed(Error),
    /// No read of the destination succeeded before the timeout.
    ReadFailed {
        reads: u32,
        error: Error,
    },
}

/// Every sample of a pair, stopping at the first that is not visible (a breach or failure is
/// known then; more samples would only spend calls) or when the run's budget is spent.
#[derive(Debug)]
pub struct PairMeasurement {
    pub samples: Vec<Sample>,
    /// The sample that ended the pair early, if any.
    pub last: Option<SampleOutcome>,
    /// Samples not taken because the run's budget was spent.
    pub skipped: u32,
    /// PutItem + GetItem calls made (SDK retries not counted).
    pub calls: u32,
}

pub async fn measure_pair(target: &PairTarget<'_>, plan: &SamplePlan, clock: &dyn Clock) -> PairMeasurement {
    let mut result = PairMeasurement { samples: Vec::new(), last: None, skipped: 0, calls: 0 };
    for i in 0..plan.samples {
        if Instant::now() >= plan.run_deadline {
            result.skipped = plan.samples - i;
            break;
        }
        let (outcome, calls) = sample(target, plan, clock).await;
        result.calls += calls;
        match outcome {
            SampleOutcome::Visible(sample) => {
                tracing::debug!(
                    source = target.source,
                    destination = target.destination,
                    lag_ms = sample.lag_ms,
                    reads = sample.reads,
                    "canary visible"
                );
                result.samples.push(sample);
            }
            other => {
                result.last = Some(other);
                result.skipped = plan.samples - i - 1;
                break;
            }
        }
    }
    result
}

/// Reads of the destination that may be in flight at once (a slow destination slows the
/// schedule down instead of piling up requests).
pub const MAX_READS_IN_FLIGHT: usize = 4;

/// One finished read of the destination.
struct Read {
    midpoint: Instant,
    visible: Result<bool, Error>,
}

/// One canary: write it and, from the same moment, read the destination on the schedule (reads
/// are started by the clock, not after the previous one returns, so the resolution is the gap
/// between reads rather than a round trip). Returns the outcome and the calls made.
async fn sample(target: &PairTarget<'_>, plan: &SamplePlan, clock: &dyn Clock) -> (SampleOutcome, u32) {
    let now_ms = clock.now_ms();
    let seq = canary::next_seq(now_ms);
    let item = canary::canary_item(&target.key, seq, now_ms, target.ttl_attribute, plan.ttl_seconds);
    let start = Instant::now();
    let own_deadline = start + plan.schedule.timeout;
    let deadline = own_deadline.min(plan.run_deadline);
    let write_failed = AtomicBool::new(false);

    let write = async {
        let limit = plan.call_timeout.min(plan.run_deadline.saturating_duration_since(Instant::now()));
        let sent = Instant::now();
        let result = within(limit, "PutItem", target.source, async {
            target
                .source_dynamodb
                .put_item()
                .table_name(target.table)
                .set_item(Some(item))
                .send()
                .await
                .aws_context("PutItem", target.source)
        })
        .await;
        if result.is_err() {
            write_failed.store(true, Ordering::SeqCst);
        }
        result.map(|_| midpoint(sent, Instant::now()))
    };
    let reads = read_until_visible(target, seq, plan, start, deadline, &write_failed);
    let (written, (hit, misses, errors, issued)) = futures_util::join!(write, reads);
    let calls = 1 + issued;
    let write_at = match written {
        Ok(at) => at,
        Err(err) => return (SampleOutcome::WriteFailed(err), calls),
    };
    let since_write = |at: Instant| millis(at.saturating_duration_since(write_at));
    if let Some(hit) = hit {
        let not_visible_at_ms = misses.iter().filter(|m| **m < hit && **m > write_at).max().map(|m| since_write(*m));
        let sample = Sample { seq, lag_ms: since_write(hit), not_visible_at_ms, reads: issued };
        return (SampleOutcome::Visible(sample), calls);
    }
    match (misses.is_empty(), errors.into_iter().last()) {
        (true, Some(error)) => (SampleOutcome::ReadFailed { reads: issued, error }, calls),
        (_, last_error) => (
            SampleOutcome::TimedOut {
                seq,
                // The lag is at least this: the last read that did not see the canary.
                waited_ms: since_write(misses.iter().max().copied().unwrap_or_else(Instant::now)),
                reads: issued,
                cut_by_run_budget: plan.run_deadline < own_deadline && Instant::now() >= plan.run_deadline,
                last_error: last_error.map(|e| e.to_string()),
            },
            calls,
        ),
    }
}

/// Reads the destination on the schedule from `start` until a read returns `seq` (its midpoint is
/// returned), the deadline passes, the schedule's reads are spent, or the write failed. Returns
/// (hit, midpoints of reads that did not see it, read errors, reads started).
async fn read_until_visible(
    target: &PairTarget<'_>,
    seq: u64,
    plan: &SamplePlan,
    start: Instant,
    deadline: Instant,
    write_failed: &AtomicBool,
) -> (Option<Instant>, Vec<Instant>, Vec<Error>, u32) {
    let max_reads = plan.schedule.max_reads();
    let mut in_flight = FuturesUnordered::new();
    let mut issued = 0u32;
    let mut next_at = start;
    let mut misses = Vec::new();
    let mut errors = Vec::new();
    loop {
        if write_failed.load(Ordering::SeqCst) {
            break;
        }
        let now = Instant::now();
        let may_issue = issued < max_reads && now < deadline;
        if may_issue && now >= next_at && in_flight.len() < MAX_READS_IN_FLIGHT {
            // The deadline bounds when reads start; each read has the call limit (within the
            // run's budget), so a read started just before the deadline is not cut short.
            let limit = plan.call_timeout.min(plan.run_deadline.saturating_duration_since(now));
            in_flight.push(read_once(target, seq, limit));
            issued += 1;
            next_at = (next_at + plan.schedule.gap_before(issued)).max(now);
            continue;
        }
        // Wait for a read to finish or, when another read may start, for its time; never spin.
        let may_issue_later = may_issue && in_flight.len() < MAX_READS_IN_FLIGHT;
        if !may_issue_later && in_flight.is_empty() {
            break;
        }
        let wake = tokio::time::Instant::from_std(next_at.min(deadline));
        tokio::select! {
            Some(read) = in_flight.next(), if !in_flight.is_empty() => match read.visible {
                Ok(true) => return (Some(read.midpoint), misses, errors, issued),
                Ok(false) => misses.push(read.midpoint),
                Err(err) => {
                    tracing::debug!(destination = target.destination, error = %err, "canary read failed");
                    errors.push(err);
                }
            },
            _ = tokio::time::sleep_until(wake), if may_issue_later => {}
            else => break,
        }
    }
    (None, misses, errors, issued)
}

/// One strongly consistent read of the canary's sequence attribute in the destination.
async fn read_once(target: &PairTarget<'_>, seq: u64, limit: Duration) -> Read {
    let started = Instant::now();
    let result = within(limit, "GetItem", target.destination, async {
        target
            .destination_dynamodb
            .get_item()
            .table_name(target.table)
            .set_key(Some(target.key.clone()))
            .consistent_read(true)
            .projection_expression("#seq")
            .expression_attribute_names("#seq", SEQ_ATTRIBUTE)
            .send()
            .await
            .aws_context("GetItem", target.destination)
    })
    .await;
    Read {
        midpoint: midpoint(started, Instant::now()),
        visible: result.map(|out| out.item.as_ref().and_then(canary::seq_of) == Some(seq)),
    }
}

fn midpoint(start: Instant, end: Instant) -> Instant {
    start + end.saturating_duration_since(start) / 2
}

fn millis(d: Duration) -> u64 {
    (d.as_secs_f64() * 1000.0).round() as u64
}

/// Runs an AWS call with a time limit; running out of time is an `Unavailable` error naming the
/// operation and Region (a Region that does not answer is treated as down).
pub async fn within<T>(
    limit: Duration,
    operation: &'static str,
    region: &str,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(elapsed) => Err(Error::Aws {
            operation,
            region: region.to_owned(),
            kind: AwsErrorKind::Unavailable,
            code: None,
            message: format!("no answer within {} ms", limit.as_millis()),
            source: Box::new(elapsed),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::{KeySchema, KeyType};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_types::retry::RetryConfig;
    use shared::clock::FixedClock;
    use std::sync::atomic::AtomicU64;
    use std::sync::{Arc, Mutex};

    /// The seq the last PutItem wrote, shared with the GetItem mock.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Option<u64>>>);

    fn put_ok(written: &Written) -> Rule {
        let written = written.clone();
        mock!(Client::put_item).then_compute_output(move |input| {
            if let Ok(mut slot) = written.0.lock() {
                *slot = input.item().and_then(canary::seq_of);
            }
            PutItemOutput::builder().build()
        })
    }

    /// Reads that miss `misses` times, then return what was written.
    fn get_after(written: &Written, misses: u64) -> Rule {
        let (written, count) = (written.clone(), Arc::new(AtomicU64::new(0)));
        mock!(Client::get_item).then_compute_output(move |_| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let seq = written.0.lock().ok().and_then(|s| *s);
            match seq {
                Some(seq) if n >= misses => {
                    GetItemOutput::builder().item(SEQ_ATTRIBUTE, AttributeValue::N(seq.to_string())).build()
                }
                _ => GetItemOutput::builder().build(),
            }
        })
    }

    fn client(rules: &[&Rule]) -> Client {
        let retry = RetryConfig::standard().with_max_attempts(2).with_initial_backoff(Duration::from_millis(1));
        match rules {
            [one] => mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [*one], |c| c.retry_config(retry.clone())),
            _ => unreachable!("one rule per client in these tests"),
        }
    }

    fn plan(timeout_ms: u64) -> SamplePlan {
        SamplePlan {
            samples: 2,
            schedule: PollSchedule {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(10),
                timeout: Duration::from_millis(timeout_ms),
            },
            ttl_seconds: 60,
            call_timeout: Duration::from_secs(2),
            run_deadline: Instant::now() + Duration::from_secs(10),
        }
    }

    fn key() -> HashMap<String, AttributeValue> {
        KeySchema { partition_key: "pk".into(), partition_type: KeyType::S, sort_key: None }
            .canary_key("us-east-1", "eu-west-1", "eu-west-1")
            .expect("key")
    }

    fn target<'a>(source: &'a Client, destination: &'a Client) -> PairTarget<'a> {
        PairTarget {
            source: "us-east-1",
            destination: "eu-west-1",
            source_dynamodb: source,
            destination_dynamodb: destination,
            table: "T1",
            key: key(),
            ttl_attribute: "expires_at",
        }
    }

    #[tokio::test]
    async fn a_canary_seen_by_a_later_read_is_a_sample_with_its_reads_counted() {
        let written = Written::default();
        let (put, get) = (put_ok(&written), get_after(&written, 2));
        let (source, destination) = (client(&[&put]), client(&[&get]));

        let m = measure_pair(&target(&source, &destination), &plan(1_000), &FixedClock::at(1_800_000_000_000)).await;

        assert!(m.last.is_none(), "{:?}", m.last);
        assert_eq!(m.samples.len(), 2);
        assert!(m.samples[0].reads >= 3, "two misses before the hit: {:?}", m.samples[0]);
        // The first read starts with the write and may run before it: it sees the previous canary.
        assert!(m.samples[1].reads <= 2, "{:?}", m.samples[1]);
        assert_ne!(m.samples[0].seq, m.samples[1].seq);
        assert_eq!(put.num_calls(), 2);
        assert!(m.calls as usize >= put.num_calls() + get.num_calls() - 1, "{} calls", m.calls);
    }

    #[tokio::test]
    async fn a_canary_never_seen_times_out_within_the_schedule_and_stops_the_pair() {
        let written = Written::default();
        let (put, get) = (put_ok(&written), get_after(&written, u64::MAX));
        let (source, destination) = (client(&[&put]), client(&[&get]));
        let plan = plan(150);

        let started = Instant::now();
        let m = measure_pair(&target(&source, &destination), &plan, &FixedClock::at(1)).await;

        let Some(SampleOutcome::TimedOut { reads, waited_ms, .. }) = m.last else { panic!("{:?}", m.last) };
        assert!(reads <= plan.schedule.max_reads(), "{reads} reads");
        assert!((100..=150).contains(&waited_ms), "{waited_ms}");
        assert_eq!(m.skipped, 1, "no second sample after a timeout");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_failing_write_or_failing_reads_are_reported_as_such() {
        let written = Written::default();
        let put_503 = mock!(Client::put_item).sequence().http_status(503, None).times(2).build();
        let get = get_after(&written, 0);
        let (source, destination) = (client(&[&put_503]), client(&[&get]));
        let m = measure_pair(&target(&source, &destination), &plan(200), &FixedClock::at(1)).await;
        let Some(SampleOutcome::WriteFailed(err)) = m.last else { panic!("{:?}", m.last) };
        assert!(err.to_string().starts_with("PutItem in us-east-1 failed (unavailable"), "{err}");

        let put = put_ok(&written);
        let get_503 = mock!(Client::get_item).sequence().http_status(503, None).repeatedly().build();
        let (source, destination) = (client(&[&put]), client(&[&get_503]));
        let m = measure_pair(&target(&source, &destination), &plan(100), &FixedClock::at(1)).await;
        let Some(SampleOutcome::ReadFailed { error, .. }) = m.last else { panic!("{:?}", m.last) };
        assert!(error.to_string().starts_with("GetItem in eu-west-1 failed (unavailable"), "{error}");
    }
}
