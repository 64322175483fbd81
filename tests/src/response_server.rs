//! A stand-in for CloudFormation's pre-signed ResponseURL: a tiny HTTP/1.1 server on
//! `127.0.0.1:0` (std only, one thread) that records the method, path, headers and body of every
//! request exactly as received, and answers `200 OK` (or `500` for the first N requests, to prove
//! retries). Each connection carries one request and is closed after the answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as on the request line.
    pub target: String,
    /// Header names lower-cased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the server answered with.
    pub answered: u16,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (panics with the raw body if it is not JSON: a test failure).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    arrived: Condvar,
}

/// The server; dropping it stops accepting connections.
pub struct ResponseServer {
    url: String,
    shared: Arc<Shared>,
    fail_next: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl ResponseServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port for the response server");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let fail_next = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_shared, thread_fail, thread_stop) =
            (Arc::clone(&shared), Arc::clone(&fail_next), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                serve(stream, &thread_shared, &thread_fail);
            }
        });
        Self { url: format!("http://{addr}"), shared, fail_next, stop }
    }

    /// A ResponseURL shaped like CloudFormation's pre-signed S3 URL, pointing at this server.
    pub fn response_url(&self, name: &str) -> String {
        format!(
            "{}/arn%3Aaws%3Acloudformation%3Aus-east-1%3A123456789012%3Astack/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Expires=7200&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=0123456789abcdef",
            self.url
        )
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next `count` requests are answered `500 Internal Server Error` (and still recorded).
    pub fn fail_next(&self, count: u32) {
        self.fail_next.store(count, Ordering::SeqCst);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Requests to [`ResponseServer::response_url`]`(name)` (tests sharing a server use distinct names).
    pub fn requests_for(&self, name: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.target.contains(&format!("stack/{name}?"))).collect()
    }

    /// Waits until at least `count` requests arrived, or `timeout` passes; returns them.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.shared.requests.lock().expect("requests lock");
        while requests.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            requests = self.shared.arrived.wait_timeout(requests, left).expect("requests lock").0;
        }
        requests.clone()
    }
}

impl Drop for ResponseServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn serve(stream: TcpStream, shared: &Shared, fail_next: &AtomicU32) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return; // a wake-up connection or a client that gave up
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        body.clear();
    }
    let fail = fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let (status, text) = if fail { (500, "Internal Server Error") } else { (200, "OK") };
    // Recorded before answering: once the client has its answer, the test sees the request.
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(RecordedRequest { method, target, headers, body, answered: status });
        shared.arrived.notify_all();
    }
    let mut stream = stream;
    let _ = write!(stream, "HTTP/1.1 {status} {text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(url: &str, body: &str) -> u16 {
        let authority = url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
        let path = &url[url.find(&authority).map(|i| i + authority.len()).unwrap_or(0)..];
        let mut stream = TcpStream::connect(&authority).expect("connect");
        write!(
            stream,
            "PUT {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: \r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    #[test]
    fn records_what_it_receives_and_fails_on_demand() {
        let server = ResponseServer::start();
        server.fail_next(1);
        let url = server.response_url("s1");
        assert_eq!(put(&url, r#"{"Status":"SUCCESS"}"#), 500);
        assert_eq!(put(&url, r#"{"Status":"SUCCESS"}"#), 200);
        let got = server.wait_for(2, Duration::from_secs(5));
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].answered, got[1].answered), (500, 200));
        assert_eq!(got[1].method, "PUT");
        assert_eq!(got[1].header("Content-Type"), Some(""));
        assert_eq!(got[1].json()["Status"], "SUCCESS");
        assert_eq!(server.requests_for("s1").len(), 2);
        assert!(server.requests_for("other").is_empty());
    }
}
