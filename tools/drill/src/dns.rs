//! Which Region Route 53 answers for users in an area: the real `TestDNSAnswer` call (aws-sdk-route53)
//! with the area's example address as EDNS0 client subnet. The emulator answers it from the same
//! latency records and health checks failover changes (tests/emulator/README.md section 4).

use crate::error::{Ctx, Result, fail};
use aws_sdk_route53::types::RrType;
use serde_json::Value;
use std::collections::BTreeMap;

/// The areas the drill shows, as the seed describes its users.
pub const SHOWN_AREAS: [&str; 3] = ["North America", "Europe", "Asia Pacific"];

/// One client area of the emulator's table (`GET /_multisite/dns-areas`).
#[derive(Debug, Clone)]
pub struct Area {
    pub name: String,
    pub example_ip: String,
    /// Regions nearest first.
    pub regions_by_latency: Vec<String>,
}

impl Area {
    /// The Region latency routing should answer with when `healthy` are the healthy Regions.
    pub fn expected(&self, healthy: &[String]) -> Option<String> {
        let known = self.regions_by_latency.iter().find(|r| healthy.contains(r)).cloned();
        known.or_else(|| {
            // A Region missing from the latency table ranks after every listed one, ties by name.
            let mut rest: Vec<&String> = healthy.iter().collect();
            rest.sort();
            rest.first().map(|r| (*r).clone())
        })
    }
}

/// The shown areas from the emulator's control API answer.
pub fn areas(table: &Value) -> Result<Vec<Area>> {
    SHOWN_AREAS
        .iter()
        .map(|name| {
            let entry = table.get(*name).ok_or_else(|| fail(format!("the emulator's area table has no `{name}`")))?;
            Ok(Area {
                name: (*name).to_owned(),
                example_ip: entry["example_ip"].as_str().unwrap_or_default().to_owned(),
                regions_by_latency: entry["regions_by_latency"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The Region Route 53 answers `record` with for a client at `client_ip`.
pub async fn answer(
    route53: &aws_sdk_route53::Client,
    zone_id: &str,
    record: &str,
    client_ip: &str,
    record_values: &BTreeMap<String, String>,
) -> Result<Option<String>> {
    let out = route53
        .test_dns_answer()
        .hosted_zone_id(zone_id)
        .record_name(record)
        .record_type(RrType::A)
        .edns0_client_subnet_ip(client_ip)
        .send()
        .await
        .ctx(format!("TestDNSAnswer for {client_ip}"))?;
    Ok(out.record_data().iter().find_map(|value| record_values.get(value).cloned()))
}

/// The answer for every area, in order.
pub async fn answers(
    route53: &aws_sdk_route53::Client,
    zone_id: &str,
    record: &str,
    areas: &[Area],
    record_values: &BTreeMap<String, String>,
) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for area in areas {
        out.push(answer(route53, zone_id, record, &area.example_ip, record_values).await?);
    }
    Ok(out)
}
