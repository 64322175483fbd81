//! `--scenario simultaneous`: the alarms of two Regions go to ALARM at the same moment, with
//! min_healthy_regions = Regions - 1 (at most one may be evacuated). Their recorded events are
//! delivered at once to their actors (failover and scaler as deployed in each alarm's Region, two
//! different Regions), which race for the arbiter's fleet record: exactly one evacuation may win,
//! the other must be Refused. Then both alarms go back to OK and everything recovers.

use super::*;

impl Drill<'_> {
    /// The Region whose functions act on `region`'s alarm (`Topology::actor_region`).
    fn actor_of(&self, region: &str) -> Result<String> {
        let topology = &self.deployment.topology;
        let cell = topology.cell(region).ok_or_else(|| fail(format!("no cell {region}")))?;
        let alarm = cell.alarms.first().ok_or_else(|| fail(format!("{region} has no alarm")))?;
        Ok(topology.actor_region(cell, alarm).to_owned())
    }

    /// (Region, status) of every cell in the arbiter's fleet record, and the evacuated ones.
    async fn fleet_view(&self) -> Result<(BTreeMap<String, RegionStatus>, Vec<String>)> {
        let (fleet, _) = self.ledger()?.fleet_status().await?;
        let statuses: BTreeMap<String, RegionStatus> =
            self.regions.iter().map(|r| (r.clone(), fleet.status_of(r))).collect();
        let evacuated =
            statuses.iter().filter(|(_, s)| **s == RegionStatus::Evacuated).map(|(r, _)| r.clone()).collect();
        Ok((statuses, evacuated))
    }

    /// Whether each Region is out of routing (health check forced unhealthy, or ARC control Off).
    async fn inverted_checks(&self) -> Result<BTreeMap<String, bool>> {
        let mut out = BTreeMap::new();
        for region in &self.regions {
            out.insert(region.clone(), self.out_of_routing(region).await.map_err(crate::error::fail)?);
        }
        Ok(out)
    }

    /// The ledger (arbiter fleet record) equals the world: a health check is inverted exactly
    /// for the Regions the fleet record says are Evacuated.
    async fn ledger_matches_world(&self) -> Result<(bool, String)> {
        let (statuses, _) = self.fleet_view().await?;
        let inverted = self.inverted_checks().await?;
        let ok = self.regions.iter().all(|r| inverted[r] == (statuses[r] == RegionStatus::Evacuated));
        let detail = self
            .regions
            .iter()
            .map(|r| format!("{r} {:?} / health check inverted={}", statuses[r], inverted[r]))
            .collect::<Vec<_>>()
            .join(", ");
        Ok((ok, detail))
    }

    pub(super) async fn run_simultaneous(&mut self) -> Result<()> {
        let alarming = self.options.alarming();
        let (a, b) = (alarming[0].clone(), alarming[1].clone());
        let (actor_a, actor_b) = (self.actor_of(&a)?, self.actor_of(&b)?);
        let topology = &self.deployment.topology;
        self.tl.event(format!(
            "SCENARIO simultaneous: the alarms of {a} and {b} go to ALARM at the same moment; {} Regions, min_healthy_regions {}: at most one may be evacuated; actors {actor_a} (for {a}) and {actor_b} (for {b}); arbiter {}",
            self.regions.len(),
            topology.failover_policy.min_healthy_regions,
            topology.arbiter_region()
        ));
        let baseline = self.lag_probe("baseline").await?;
        self.check(
            "baseline: replication lag within the RPO budget, every Region ready for 100%",
            !baseline.rpo_breached && baseline.readiness.ok,
            probe_detail(&baseline),
        );
        let (writer_before, _) = world::aurora_writer(&self.clients, &self.home).await?;

        // Both alarms at once.
        let (ca, cb) = tokio::join!(
            self.change_alarm_of(&a, StateValue::Alarm, "drill: simultaneous alarm"),
            self.change_alarm_of(&b, StateValue::Alarm, "drill: simultaneous alarm")
        );
        let (ca, cb) = (ca?, cb?);
        for c in [&ca, &cb] {
            self.tl.event(format!(
                "DETECTION: alarm {} (CloudWatch in {}, SetAlarmState) {}",
                c.alarm,
                c.watcher,
                c.describe()
            ));
        }
        for c in [&ca, &cb] {
            let t_ms = self.offset_of(c.changed);
            self.mark(t_ms, MarkerKind::Detection, format!("detection: {} ALARM", c.alarm));
        }
        self.tl.event(format!(
            "delivering both at once: {} to failover and scaler as deployed in {actor_a}, {} to those in {actor_b}",
            delivered_as(&ca, None),
            delivered_as(&cb, None)
        ));
        let (pa, pb) = (ca.payload(None), cb.payload(None));
        let (la, lb) = (format!("{a}'s ALARM in {actor_a}"), format!("{b}'s ALARM in {actor_b}"));
        let (da, db) = tokio::join!(self.deliver_in(&actor_a, &pa, &la), self.deliver_in(&actor_b, &pb, &lb));
        // Let a writer move started by the winner finish.
        let this = &*self;
        let writer_after = until(|| async {
            let (writer, in_progress) = world::aurora_writer(&this.clients, &this.home).await.ok()?;
            (!in_progress).then_some(writer)
        })
        .await
        .flatten();

        let outcome = |d: &Delivery, region: &str| -> Option<failover::Outcome> {
            d.failover.as_ref().ok()?.reports.iter().find(|r| r.region.as_deref() == Some(region)).map(|r| r.outcome)
        };
        let (oa, ob) = (outcome(&da, &a), outcome(&db, &b));
        let (_, evacuated) = self.fleet_view().await?;
        let handled = [&da, &db].iter().all(|d| d.failover.is_ok() && d.scaler.is_ok());
        let one_won = matches!(
            (oa, ob),
            (Some(failover::Outcome::Reconciled), Some(failover::Outcome::Refused))
                | (Some(failover::Outcome::Refused), Some(failover::Outcome::Reconciled))
        );
        let winner = if oa == Some(failover::Outcome::Reconciled) { a.clone() } else { b.clone() };
        self.report.survivors = self.regions.iter().filter(|r| **r != winner).cloned().collect();
        let refusal = [(&da, &a), (&db, &b)]
            .iter()
            .filter_map(|(d, r)| {
                d.failover.as_ref().ok()?.reports.iter().find(|x| x.region.as_deref() == Some(r.as_str()))
            })
            .find(|r| r.outcome == failover::Outcome::Refused)
            .and_then(|r| r.reason.clone())
            .unwrap_or_else(|| "none".into());
        self.check(
            "simultaneous: exactly one Region evacuated, the other's evacuation Refused",
            handled && one_won && evacuated.len() == 1 && evacuated[0] == winner,
            format!(
                "failover for {a} (in {actor_a}): {oa:?}, for {b} (in {actor_b}): {ob:?}; fleet record Evacuated: [{}]; refusal: {refusal}",
                evacuated.join(", ")
            ),
        );

        let moves: Vec<String> = [&da, &db]
            .iter()
            .filter_map(|d| d.failover.as_ref().ok())
            .flat_map(|r| &r.reports)
            .flat_map(|r| &r.steps)
            .filter(|s| matches!(s.action, failover::plan::Action::MoveAuroraWriter { .. }))
            .map(|s| action_text(&s.action))
            .collect();
        let writer_ok = moves.len() <= 1
            && writer_after.as_ref().is_some_and(|w| !evacuated.contains(w))
            && (moves.len() == 1) == (writer_before.as_ref().is_some_and(|w| evacuated.contains(w)));
        self.check(
            "simultaneous: the Aurora writer moved at most once, never into an evacuated Region",
            writer_ok,
            format!(
                "writer {} -> {}; writer moves [{}]",
                writer_before.as_deref().unwrap_or("none"),
                writer_after.as_deref().unwrap_or("none (or still moving)"),
                moves.join(", ")
            ),
        );

        let (matches, detail) = self.ledger_matches_world().await?;
        self.check(
            "simultaneous: the ledger (arbiter fleet record) equals the world",
            matches && evacuated.len() == 1,
            detail,
        );

        let n = self.regions.len() as i32;
        let d = world::BASELINE.desired;
        let target = d.max((d * n + (n - 2)) / (n - 1));
        let survivors = self.report.survivors.clone();
        let this = &*self;
        let scaled = until(|| async {
            let mut sizes = Vec::new();
            for region in &survivors {
                let group = world::group_sizes(&this.clients, region).await.ok()?;
                if group.sizes.desired < target || group.in_service < target as usize {
                    return None;
                }
                sizes.push(format!("{region} {} ({} InService)", group.sizes, group.in_service));
            }
            Some(sizes.join(", "))
        })
        .await;
        self.check(
            "simultaneous: the evacuated Region's survivors scaled to carry 100%",
            scaled.is_some(),
            format!("target desired {target} each; {}", scaled.unwrap_or_else(|| "NOT REACHED".into())),
        );

        // Recovery: both alarms OK at once, after the cool-down, with the writer asked back.
        let probe = self.lag_probe("before recovery").await?;
        let (oka, okb) = tokio::join!(
            self.change_alarm_of(&a, StateValue::Ok, "drill: healthy again"),
            self.change_alarm_of(&b, StateValue::Ok, "drill: healthy again")
        );
        let (oka, okb) = (oka?, okb?);
        for c in [&oka, &okb] {
            self.tl.event(format!("alarm {} (CloudWatch in {}, SetAlarmState) {}", c.alarm, c.watcher, c.describe()));
        }
        let (fleet, _) = self.ledger()?.fleet_status().await?;
        let changed = fleet.last_change_ms(&winner).unwrap_or(0);
        let cooldown_ms = self.options.cooldown_seconds * 1000;
        let elapsed = world::now_ms().saturating_sub(changed);
        if elapsed < cooldown_ms {
            let wait = cooldown_ms - elapsed + 300;
            self.tl.event(format!("waiting {:.1} s for the cool-down", wait as f64 / 1000.0));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        // The writer is asked back only if it left the evacuated Region (restore_writer moves it
        // into the returning Region: asked for a Region it never left, it would move it there).
        let restore_writer = json!({"restore_writer": true});
        let writer_left = writer_before.as_deref() == Some(winner.as_str());
        let with_writer = |c: &AlarmChange, region: &str| {
            c.payload((writer_left && region == winner).then(|| restore_writer.clone()))
        };
        let (pa, pb) = (with_writer(&oka, &a), with_writer(&okb, &b));
        let mut recovered_after = None;
        for attempt in 1..=3 {
            if attempt > 1 {
                // The gate wants a fresh verdict that includes the returning Region.
                self.lag_probe(&format!("recovery attempt {attempt}")).await?;
            }
            let overrides = |region: &str| (writer_left && region == winner).then_some(&restore_writer);
            self.tl.event(format!(
                "delivering both OKs at once (attempt {attempt}): {} in {actor_a}, {} in {actor_b}",
                delivered_as(&oka, overrides(&a)),
                delivered_as(&okb, overrides(&b))
            ));
            if attempt == 1 {
                let t_ms = self.tl.ms();
                self.mark(t_ms, MarkerKind::Failback, "failback: both OKs delivered");
            }
            let (la, lb) = (format!("{a}'s OK in {actor_a}"), format!("{b}'s OK in {actor_b}"));
            let _ = tokio::join!(self.deliver_in(&actor_a, &pa, &la), self.deliver_in(&actor_b, &pb, &lb));
            if self.fleet_view().await?.1.is_empty() {
                recovered_after = Some(attempt);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
        let first = self.regions[0].clone();
        let this = &*self;
        let writer_back = until(|| async {
            let (writer, in_progress) = world::aurora_writer(&this.clients, &this.home).await.ok()?;
            (writer.as_deref() == Some(first.as_str()) && !in_progress).then_some(())
        })
        .await
        .is_some();

        // Capacities: the scheduled restore sweep, as in the default drill.
        let mut restored = false;
        let mut sizes = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(self.options.cooldown_seconds + 10);
        while Instant::now() < deadline {
            sizes.clear();
            for region in &self.regions {
                sizes.push((region.clone(), world::group_sizes(&self.clients, region).await?));
            }
            restored = sizes.iter().all(|(_, s)| s.sizes == world::BASELINE);
            if restored {
                break;
            }
            let result = self.restore_sweep().await?;
            self.tl.event(format!("scheduled restore sweep: scaler -> {}", summarize_scaler(&result)));
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
        let (matches, detail) = self.ledger_matches_world().await?;
        let (_, evacuated_after) = self.fleet_view().await?;
        self.check(
            "simultaneous: both recovered (every Region active, no health check inverted, writer back, capacities restored)",
            recovered_after.is_some() && evacuated_after.is_empty() && matches && writer_back && restored && !probe.rpo_breached,
            format!(
                "OKs delivered {} time(s); {detail}; writer {}; groups {}",
                recovered_after.map(|n| n.to_string()).unwrap_or_else(|| "3 (not recovered)".into()),
                if writer_back { format!("in {first}") } else { format!("not back in {first}") },
                sizes.iter().map(|(r, s)| format!("{r} {}", s.sizes)).collect::<Vec<_>>().join(", ")
            ),
        );
        self.check_authorization();
        Ok(())
    }
}
