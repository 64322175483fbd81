//! Delivering the answer: an HTTP PUT of the response body to the pre-signed `ResponseURL`,
//! retried a bounded number of times with exponential backoff and jitter, and never past a
//! deadline (the Lambda's own).
//!
//! The HTTP client is the hyper + rustls stack the AWS SDK already builds
//! (`aws-smithy-http-client`'s connector with the SDK's TLS provider), used directly: HTTPS for
//! real S3 pre-signed URLs, plain HTTP for a local test server, and no second HTTP client crate in
//! the binary. The request carries an empty `Content-Type` (S3 signed the URL without one, so any
//! other value fails the signature) and an explicit `Content-Length`.

use aws_smithy_http_client::Connector;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// How hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// At most this many PUTs.
    pub attempts: u32,
    /// Backoff before the second attempt; doubles each time, up to `max_backoff` (each sleep is
    /// a random value between half and all of it).
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// One PUT may take at most this long (connect + send + answer).
    pub attempt_timeout: Duration,
}

impl Default for DeliveryPolicy {
    /// 5 attempts, 250 ms doubling to 2 s, 2 s per attempt: all done well inside the default
    /// 5 s deadline margin when S3 answers at all; the deadline cuts it shorter when it does not.
    fn default() -> Self {
        Self {
            attempts: 5,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(2),
        }
    }
}

/// What one PUT got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The server answered with this HTTP status (and the start of its body, for the logs).
    Answered { status: u16, body: String },
    /// No answer: connection failure, timeout, ...
    Failed(String),
}

impl Attempt {
    fn is_success(&self) -> bool {
        matches!(self, Attempt::Answered { status, .. } if (200..300).contains(status))
    }

    /// A 4xx other than 408/429 means the URL itself is bad or expired: trying again cannot help.
    fn is_permanent(&self) -> bool {
        matches!(self, Attempt::Answered { status, .. } if (400..500).contains(status) && *status != 408 && *status != 429)
    }
}

/// The record of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: bool,
    pub attempts: Vec<Attempt>,
}

/// Runs `put` until it succeeds, fails permanently, runs out of attempts or would pass `deadline`.
pub async fn deliver_with<F, Fut>(policy: &DeliveryPolicy, deadline: Instant, mut put: F) -> Delivery
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut attempts = Vec::new();
    let mut backoff = policy.first_backoff;
    for n in 1..=policy.attempts.max(1) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        let limit = policy.attempt_timeout.min(remaining);
        let attempt = match tokio::time::timeout(limit, put()).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Failed(format!("no answer within {limit:?}")),
        };
        let (success, permanent) = (attempt.is_success(), attempt.is_permanent());
        attempts.push(attempt);
        if success {
            return Delivery { delivered: true, attempts };
        }
        if permanent || n == policy.attempts {
            break;
        }
        let sleep = jitter(backoff);
        if Instant::now() + sleep >= deadline {
            break;
        }
        tokio::time::sleep(sleep).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
    Delivery { delivered: false, attempts }
}

/// A random duration in `[d/2, d]` ("equal jitter"), from the std hasher's per-process random keys.
fn jitter(d: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(d.as_nanos());
    let fraction = (hasher.finish() % 1001) as f64 / 1000.0;
    d.mul_f64(0.5 + fraction / 2.0)
}

/// PUTs bodies to pre-signed URLs over HTTP or HTTPS. The connector (and with it the TLS roots)
/// is built on the first PUT, not at cold start.
pub struct ResponseClient {
    settings: HttpConnectorSettings,
    connector: OnceLock<Connector>,
}

impl std::fmt::Debug for ResponseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseClient")
    }
}

impl Default for ResponseClient {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(2))
    }
}

impl ResponseClient {
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        let settings =
            HttpConnectorSettings::builder().connect_timeout(connect_timeout).read_timeout(read_timeout).build();
        Self { settings, connector: OnceLock::new() }
    }

    fn connector(&self) -> &Connector {
        self.connector.get_or_init(|| {
            Connector::builder()
                .connector_settings(self.settings.clone())
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build()
        })
    }

    /// One PUT of `body` to `url` with an empty Content-Type.
    pub async fn put(&self, url: &str, body: &[u8]) -> Attempt {
        let mut request = HttpRequest::new(SdkBody::from(body.to_vec()));
        if let Err(e) = request.set_method("PUT") {
            return Attempt::Failed(format!("cannot build the request: {e}"));
        }
        if let Err(e) = request.set_uri(url) {
            return Attempt::Failed(format!("the ResponseURL is not a valid URL: {e}"));
        }
        request.headers_mut().insert("content-type", "");
        request.headers_mut().insert("content-length", body.len().to_string());
        match self.connector().call(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = ByteStream::new(response.into_body())
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.into_bytes()).chars().take(300).collect())
                    .unwrap_or_default();
                Attempt::Answered { status, body }
            }
            Err(e) => Attempt::Failed(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn fast() -> DeliveryPolicy {
        DeliveryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            attempt_timeout: Duration::from_millis(200),
        }
    }

    fn answered(status: u16) -> Attempt {
        Attempt::Answered { status, body: String::new() }
    }

    async fn run(policy: &DeliveryPolicy, deadline: Duration, script: Vec<Attempt>) -> (Delivery, usize) {
        let calls = Mutex::new(script.into_iter());
        let count = Mutex::new(0usize);
        let delivery = deliver_with(policy, Instant::now() + deadline, || {
            *count.lock().expect("count") += 1;
            let next = calls.lock().expect("script").next().unwrap_or_else(|| answered(500));
            async move { next }
        })
        .await;
        let n = *count.lock().expect("count");
        (delivery, n)
    }

    #[tokio::test]
    async fn retries_5xx_and_connection_failures_until_accepted() {
        let (delivery, calls) =
            run(&fast(), Duration::from_secs(5), vec![answered(500), Attempt::Failed("refused".into()), answered(200)])
                .await;
        assert!(delivery.delivered);
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_attempt_limit() {
        let (delivery, calls) = run(&fast(), Duration::from_secs(5), vec![]).await;
        assert!(!delivery.delivered);
        assert_eq!(calls, 5);
        assert_eq!(delivery.attempts.len(), 5);
    }

    #[tokio::test]
    async fn does_not_retry_a_url_that_is_refused_for_good() {
        let (delivery, calls) = run(&fast(), Duration::from_secs(5), vec![answered(403), answered(200)]).await;
        assert!(!delivery.delivered);
        assert_eq!(calls, 1, "403 from S3 means an expired or bad signature");
        let (throttled, calls) = run(&fast(), Duration::from_secs(5), vec![answered(429), answered(200)]).await;
        assert!(throttled.delivered && calls == 2, "429 is retried");
    }

    #[tokio::test]
    async fn never_runs_past_the_deadline() {
        let slow = DeliveryPolicy { attempt_timeout: Duration::from_secs(10), ..fast() };
        let started = Instant::now();
        let delivery = deliver_with(&slow, Instant::now() + Duration::from_millis(300), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            answered(200)
        })
        .await;
        assert!(!delivery.delivered);
        assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
        assert!(matches!(&delivery.attempts[0], Attempt::Failed(m) if m.contains("no answer")));
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        for _ in 0..200 {
            let j = jitter(Duration::from_millis(1000));
            assert!((Duration::from_millis(500)..=Duration::from_millis(1000)).contains(&j), "{j:?}");
        }
    }
}
