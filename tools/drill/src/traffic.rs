//! Steady application traffic and the RPO accounting.
//!
//! One writer per Region puts items `{pk: "drill#<region>#<seq>", region, seq}` into that Region's
//! replica of the Global Table, one after the other, and remembers which were acknowledged and
//! when (drill clock). After the outage every acknowledged write is looked up in every survivor
//! (BatchGetItem, strongly consistent): a write acknowledged by the failed Region and missing in a
//! survivor was caught in the replication window.

use crate::error::{Ctx, Result};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use shared::RegionalClients;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One write the client sent.
#[derive(Debug, Clone)]
pub struct Write {
    pub region: String,
    pub seq: u64,
    pub pk: String,
    /// When the answer came, ms since the drill started.
    pub answered_ms: u64,
    pub acknowledged: bool,
}

/// The writers of every Region.
pub struct Traffic {
    log: Arc<Mutex<Vec<Write>>>,
    stops: BTreeMap<String, Arc<AtomicBool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    pub fn start(
        clients: &RegionalClients,
        regions: &[String],
        table: &str,
        interval: Duration,
        started: Instant,
    ) -> Result<Self> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stops = BTreeMap::new();
        let mut tasks = Vec::new();
        for region in regions {
            let ddb = clients.region(region)?.dynamodb.clone();
            let stop = Arc::new(AtomicBool::new(false));
            stops.insert(region.clone(), Arc::clone(&stop));
            let (log, region, table) = (Arc::clone(&log), region.clone(), table.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    seq += 1;
                    let pk = format!("drill#{region}#{seq:06}");
                    let result = ddb
                        .put_item()
                        .table_name(&table)
                        .item("pk", AttributeValue::S(pk.clone()))
                        .item("region", AttributeValue::S(region.clone()))
                        .item("seq", AttributeValue::N(seq.to_string()))
                        .send()
                        .await;
                    let write = Write {
                        region: region.clone(),
                        seq,
                        pk,
                        answered_ms: started.elapsed().as_millis() as u64,
                        acknowledged: result.is_ok(),
                    };
                    if let Ok(mut log) = log.lock() {
                        log.push(write);
                    }
                    tokio::time::sleep(interval).await;
                }
            }));
        }
        Ok(Self { log, stops, tasks })
    }

    /// Stops one Region's writer (a planned drill drains the Region before it goes down).
    pub fn stop_region(&self, region: &str) {
        if let Some(stop) = self.stops.get(region) {
            stop.store(true, Ordering::SeqCst);
        }
    }

    /// Stops every writer and waits for the writes in flight.
    pub async fn stop(self) -> Vec<Write> {
        for stop in self.stops.values() {
            stop.store(true, Ordering::SeqCst);
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Which of `keys` exist in `region` (strongly consistent BatchGetItem, 100 keys a call).
pub async fn present_in(
    clients: &RegionalClients,
    region: &str,
    table: &str,
    keys: &[String],
) -> Result<HashSet<String>> {
    let ddb = &clients.region(region)?.dynamodb;
    let mut found = HashSet::new();
    for chunk in keys.chunks(100) {
        let mut pending: Vec<HashMap<String, AttributeValue>> =
            chunk.iter().map(|k| HashMap::from([("pk".to_owned(), AttributeValue::S(k.clone()))])).collect();
        for _ in 0..10 {
            if pending.is_empty() {
                break;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending.clone()))
                .consistent_read(true)
                .build()
                .ctx("keys")?;
            let out = ddb
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .ctx(format!("BatchGetItem in {region}"))?;
            for item in out.responses.unwrap_or_default().remove(table).unwrap_or_default() {
                if let Some(AttributeValue::S(pk)) = item.get("pk") {
                    found.insert(pk.clone());
                }
            }
            pending = out.unprocessed_keys.and_then(|mut u| u.remove(table)).map(|k| k.keys).unwrap_or_default();
        }
    }
    Ok(found)
}
