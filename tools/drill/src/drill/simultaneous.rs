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
        let pair = self.announce_pair()?;
        let writer_before = self.simultaneous_baseline().await?;
        let alarms = self.alarm_both(&pair).await?;
        let (deliveries, writer_after) = self.deliver_both(&pair, &alarms).await;
        let (winner, evacuated) = self.check_one_evacuated(&pair, &deliveries).await?;
        self.check_writer_moved_once(&deliveries, writer_before.as_deref(), writer_after.as_deref(), &evacuated);
        let (matches, detail) = self.ledger_matches_world().await?;
        self.check(
            "simultaneous: the ledger (arbiter fleet record) equals the world",
            matches && evacuated.len() == 1,
            detail,
        );
        self.check_survivors_scaled().await;

        // Recovery: both alarms OK at once, after the cool-down, with the writer asked back.
        let probe = self.lag_probe("before recovery").await?;
        let writer_left = writer_before.as_deref() == Some(winner.as_str());
        let recovered_after = self.recover_both(&pair, &winner, writer_left).await?;
        let home = self.regions[0].clone();
        let writer_back = self.writer_settled_in(&home).await;
        let sizes = self.restore_capacities().await?;
        let restored = sizes.iter().all(|(_, s)| s.sizes == world::BASELINE);
        let (matches, detail) = self.ledger_matches_world().await?;
        let (_, evacuated_after) = self.fleet_view().await?;
        self.check(
            "simultaneous: both recovered (every Region active, no health check inverted, writer back, capacities restored)",
            recovered_after.is_some() && evacuated_after.is_empty() && matches && writer_back && restored && !probe.rpo_breached,
            format!(
                "OKs delivered {} time(s); {detail}; writer {}; groups {}",
                recovered_after.map(|n| n.to_string()).unwrap_or_else(|| "3 (not recovered)".into()),
                if writer_back { format!("in {home}") } else { format!("not back in {home}") },
                sizes.iter().map(|(r, s)| format!("{r} {}", s.sizes)).collect::<Vec<_>>().join(", ")
            ),
        );
        self.check_authorization();
        Ok(())
    }

    /// The two alarming Regions and their actors, announced on the timeline.
    fn announce_pair(&mut self) -> Result<Pair> {
        let alarming = self.options.alarming();
        let (a, b) = (alarming[0].clone(), alarming[1].clone());
        let pair = Pair { actor_a: self.actor_of(&a)?, actor_b: self.actor_of(&b)?, a, b };
        let topology = &self.deployment.topology;
        self.tl.event(format!(
            "SCENARIO simultaneous: the alarms of {} and {} go to ALARM at the same moment; {} Regions, min_healthy_regions {}: at most one may be evacuated; actors {} (for {}) and {} (for {}); arbiter {}",
            pair.a,
            pair.b,
            self.regions.len(),
            topology.failover_policy.min_healthy_regions,
            pair.actor_a,
            pair.a,
            pair.actor_b,
            pair.b,
            topology.arbiter_region()
        ));
        Ok(pair)
    }

    /// Checks the world starts healthy; the Aurora writer's Region before the alarms.
    async fn simultaneous_baseline(&mut self) -> Result<Option<String>> {
        let baseline = self.lag_probe("baseline").await?;
        self.check(
            "baseline: replication lag within the RPO budget, every Region ready for 100%",
            !baseline.rpo_breached && baseline.readiness.ok,
            probe_detail(&baseline),
        );
        Ok(world::aurora_writer(&self.clients, &self.home).await?.0)
    }

    /// Both alarms to ALARM at once, each marked as a detection.
    async fn alarm_both(&mut self, pair: &Pair) -> Result<[AlarmChange; 2]> {
        let (ca, cb) = tokio::join!(
            self.change_alarm_of(&pair.a, StateValue::Alarm, "drill: simultaneous alarm"),
            self.change_alarm_of(&pair.b, StateValue::Alarm, "drill: simultaneous alarm")
        );
        let alarms = [ca?, cb?];
        for c in &alarms {
            self.tl.event(format!(
                "DETECTION: alarm {} (CloudWatch in {}, SetAlarmState) {}",
                c.alarm,
                c.watcher,
                c.describe()
            ));
        }
        for c in &alarms {
            let t_ms = self.offset_of(c.changed);
            self.mark(t_ms, MarkerKind::Detection, format!("detection: {} ALARM", c.alarm));
        }
        Ok(alarms)
    }

    /// Delivers both recorded events at once, each to its own actor's failover and scaler; the
    /// Aurora writer once a move the winner started has finished (None while it still moves).
    async fn deliver_both(&mut self, pair: &Pair, alarms: &[AlarmChange; 2]) -> ([Delivery; 2], Option<String>) {
        let [ca, cb] = alarms;
        self.tl.event(format!(
            "delivering both at once: {} to failover and scaler as deployed in {}, {} to those in {}",
            delivered_as(ca, None),
            pair.actor_a,
            delivered_as(cb, None),
            pair.actor_b
        ));
        let (pa, pb) = (ca.payload(None), cb.payload(None));
        let (la, lb) =
            (format!("{}'s ALARM in {}", pair.a, pair.actor_a), format!("{}'s ALARM in {}", pair.b, pair.actor_b));
        let (da, db) = tokio::join!(self.deliver_in(&pair.actor_a, &pa, &la), self.deliver_in(&pair.actor_b, &pb, &lb));
        let this = &*self;
        let writer_after = until(|| async {
            let (writer, in_progress) = world::aurora_writer(&this.clients, &this.home).await.ok()?;
            (!in_progress).then_some(writer)
        })
        .await
        .flatten();
        ([da, db], writer_after)
    }

    /// Exactly one evacuation won the arbiter's fleet record and the other was Refused; the
    /// winner and the Regions the fleet record says are Evacuated. The survivors are the others.
    async fn check_one_evacuated<'a>(
        &mut self,
        pair: &Pair,
        deliveries: &'a [Delivery; 2],
    ) -> Result<(String, Vec<String>)> {
        let [da, db] = deliveries;
        let (a, b) = (&pair.a, &pair.b);
        let report_for = |d: &'a Delivery, region: &str| -> Option<&'a failover::Report> {
            d.failover.as_ref().ok()?.reports.iter().find(|r| r.region.as_deref() == Some(region))
        };
        let (ra, rb) = (report_for(da, a), report_for(db, b));
        let (oa, ob) = (ra.as_ref().map(|r| r.outcome), rb.as_ref().map(|r| r.outcome));
        let (_, evacuated) = self.fleet_view().await?;
        let handled = deliveries.iter().all(|d| d.failover.is_ok() && d.scaler.is_ok());
        let one_won = matches!(
            (oa, ob),
            (Some(failover::Outcome::Reconciled), Some(failover::Outcome::Refused))
                | (Some(failover::Outcome::Refused), Some(failover::Outcome::Reconciled))
        );
        let winner = if oa == Some(failover::Outcome::Reconciled) { a.clone() } else { b.clone() };
        self.report.survivors = self.regions.iter().filter(|r| **r != winner).cloned().collect();
        let refusal = [ra, rb]
            .into_iter()
            .flatten()
            .find(|r| r.outcome == failover::Outcome::Refused)
            .and_then(|r| r.reason.clone())
            .unwrap_or_else(|| "none".into());
        self.check(
            "simultaneous: exactly one Region evacuated, the other's evacuation Refused",
            handled && one_won && evacuated.len() == 1 && evacuated[0] == winner,
            format!(
                "failover for {a} (in {}): {oa:?}, for {b} (in {}): {ob:?}; fleet record Evacuated: [{}]; refusal: {refusal}",
                pair.actor_a,
                pair.actor_b,
                evacuated.join(", ")
            ),
        );
        Ok((winner, evacuated))
    }

    /// The Aurora writer moved at most once, only when it was in the evacuated Region, and never
    /// into an evacuated Region.
    fn check_writer_moved_once(
        &mut self,
        deliveries: &[Delivery; 2],
        writer_before: Option<&str>,
        writer_after: Option<&str>,
        evacuated: &[String],
    ) {
        let is_evacuated = |w: &str| evacuated.iter().any(|e| e == w);
        let moves: Vec<String> = deliveries
            .iter()
            .filter_map(|d| d.failover.as_ref().ok())
            .flat_map(|r| &r.reports)
            .flat_map(|r| &r.steps)
            .filter(|s| matches!(s.action, failover::plan::Action::MoveAuroraWriter { .. }))
            .map(|s| action_text(&s.action))
            .collect();
        let writer_ok = moves.len() <= 1
            && writer_after.is_some_and(|w| !is_evacuated(w))
            && (moves.len() == 1) == writer_before.is_some_and(is_evacuated);
        self.check(
            "simultaneous: the Aurora writer moved at most once, never into an evacuated Region",
            writer_ok,
            format!(
                "writer {} -> {}; writer moves [{}]",
                writer_before.unwrap_or("none"),
                writer_after.unwrap_or("none (or still moving)"),
                moves.join(", ")
            ),
        );
    }

    /// The survivors' groups reach the desired capacity that carries the evacuated Region's share.
    async fn check_survivors_scaled(&mut self) {
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
    }

    /// Both alarms back to OK at once, delivered after the winner's cool-down (up to three times,
    /// a fresh lag-probe verdict before each retry); the attempt after which no Region is
    /// Evacuated. `writer_left`: the writer left the winner's Region, so its OK asks it back
    /// (asked for a Region it never left, restore_writer would move the writer there).
    async fn recover_both(&mut self, pair: &Pair, winner: &str, writer_left: bool) -> Result<Option<u32>> {
        let (a, b) = (&pair.a, &pair.b);
        let (oka, okb) = tokio::join!(
            self.change_alarm_of(a, StateValue::Ok, "drill: healthy again"),
            self.change_alarm_of(b, StateValue::Ok, "drill: healthy again")
        );
        let (oka, okb) = (oka?, okb?);
        for c in [&oka, &okb] {
            self.tl.event(format!("alarm {} (CloudWatch in {}, SetAlarmState) {}", c.alarm, c.watcher, c.describe()));
        }
        self.wait_for_cooldown_of(winner).await?;
        let restore_writer = json!({"restore_writer": true});
        let overrides = |region: &str| (writer_left && region == winner).then_some(&restore_writer);
        let (pa, pb) = (oka.payload(overrides(a).cloned()), okb.payload(overrides(b).cloned()));
        for attempt in 1..=3 {
            if attempt > 1 {
                // The gate wants a fresh verdict that includes the returning Region.
                self.lag_probe(&format!("recovery attempt {attempt}")).await?;
            }
            self.tl.event(format!(
                "delivering both OKs at once (attempt {attempt}): {} in {}, {} in {}",
                delivered_as(&oka, overrides(a)),
                pair.actor_a,
                delivered_as(&okb, overrides(b)),
                pair.actor_b
            ));
            if attempt == 1 {
                let t_ms = self.tl.ms();
                self.mark(t_ms, MarkerKind::Failback, "failback: both OKs delivered");
            }
            let (la, lb) = (format!("{a}'s OK in {}", pair.actor_a), format!("{b}'s OK in {}", pair.actor_b));
            let _ = tokio::join!(self.deliver_in(&pair.actor_a, &pa, &la), self.deliver_in(&pair.actor_b, &pb, &lb));
            if self.fleet_view().await?.1.is_empty() {
                return Ok(Some(attempt));
            }
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
        Ok(None)
    }

    /// Sleeps until `region`'s last change in the fleet record is a cool-down old.
    async fn wait_for_cooldown_of(&mut self, region: &str) -> Result<()> {
        let (fleet, _) = self.ledger()?.fleet_status().await?;
        let changed = fleet.last_change_ms(region).unwrap_or(0);
        let cooldown_ms = self.options.cooldown_seconds * 1000;
        let elapsed = world::now_ms().saturating_sub(changed);
        if elapsed < cooldown_ms {
            let wait = cooldown_ms - elapsed + 300;
            self.tl.event(format!("waiting {:.1} s for the cool-down", wait as f64 / 1000.0));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        Ok(())
    }

    /// Whether the Aurora writer is back in `region` with no move in progress (within `until`'s limit).
    async fn writer_settled_in(&self, region: &str) -> bool {
        until(|| async {
            let (writer, in_progress) = world::aurora_writer(&self.clients, &self.home).await.ok()?;
            (writer.as_deref() == Some(region) && !in_progress).then_some(())
        })
        .await
        .is_some()
    }

    /// The scheduled restore sweep, as in the default drill, until every group is back at the
    /// baseline (or a cool-down and 10 s passed); the groups' sizes last seen.
    async fn restore_capacities(&mut self) -> Result<Vec<(String, shared::aws::GroupState)>> {
        let mut sizes = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(self.options.cooldown_seconds + 10);
        while Instant::now() < deadline {
            sizes.clear();
            for region in &self.regions {
                sizes.push((region.clone(), world::group_sizes(&self.clients, region).await?));
            }
            if sizes.iter().all(|(_, s)| s.sizes == world::BASELINE) {
                break;
            }
            let result = self.restore_sweep().await?;
            self.tl.event(format!("scheduled restore sweep: scaler -> {}", summarize_scaler(&result)));
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
        Ok(sizes)
    }
}

/// The two alarming Regions and the Region whose functions act on each one's alarm.
struct Pair {
    a: String,
    b: String,
    actor_a: String,
    actor_b: String,
}
