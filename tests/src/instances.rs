//! One function as deployed in several Regions at once, and the deliveries AWS makes to them.
//!
//! Every Region runs its own copy of each function (its own `AWS_REGION`, so its own ledger
//! replica and its own role, rendered for the stack in that Region). An alarm change reaches
//! them as an SNS topic with a subscription per Region delivers it (all at once), or only one
//! (an EventBridge rule in the alarm's Region), or several in a chosen order and timing (late and
//! out-of-order deliveries). With the ledger replicated at a delay, the instances see each other's
//! writes only after it, as on AWS.
//!
//! ```ignore
//! let fleet = Instances::deploy(&emulator, &deployment, Function::Failover).await;
//! let outcomes = fleet.deliver_all(async |instance| failover::handle(event.clone(), &deps(instance)).await).await;
//! ```

use crate::Emulator;
use crate::deployment::Deployment;
use crate::roles::{Function, StackRoles};
use futures_util::future::join_all;
use shared::RegionalClients;
use std::time::{Duration, Instant};

/// The function as deployed in one Region.
pub struct Instance {
    /// Its own Region (`AWS_REGION`): the `home_region` its handler runs with.
    pub region: String,
    /// Clients for every Region of the topology, signed with this stack's role of the function.
    pub clients: RegionalClients,
    pub roles: StackRoles,
}

/// What one instance did with one delivery.
#[derive(Debug)]
pub struct Delivered<T> {
    pub region: String,
    /// When the handler was called and when it returned, from the start of the delivery.
    pub started: Duration,
    pub finished: Duration,
    pub outcome: T,
}

/// The same function in every Region of a deployment.
pub struct Instances {
    pub function: Function,
    pub instances: Vec<Instance>,
}

impl Instances {
    /// Deploys `function` in every Region of `deployment` (one stack, so one role, per Region).
    pub async fn deploy(emulator: &Emulator, deployment: &Deployment, function: Function) -> Self {
        let regions: Vec<&str> = deployment.topology.regions().collect();
        let mut instances = Vec::with_capacity(regions.len());
        for region in &regions {
            let roles = deployment.stack_roles(emulator, region);
            let clients = roles.clients(emulator, function, &regions).await;
            instances.push(Instance { region: (*region).to_owned(), clients, roles });
        }
        Self { function, instances }
    }

    /// The instance deployed in `region`.
    pub fn instance(&self, region: &str) -> &Instance {
        self.instances
            .iter()
            .find(|i| i.region == region)
            .unwrap_or_else(|| panic!("{} is not deployed in {region}", self.function.binary()))
    }

    /// One delivery to every instance at once, as an SNS topic with a subscription per Region.
    pub async fn deliver_all<T>(&self, handler: impl AsyncFn(&Instance) -> T) -> Vec<Delivered<T>> {
        let schedule: Vec<(&str, Duration)> =
            self.instances.iter().map(|i| (i.region.as_str(), Duration::ZERO)).collect();
        self.deliver_timed(&schedule, handler).await
    }

    /// One delivery to the instance in `region` only.
    pub async fn deliver_to<T>(&self, region: &str, handler: impl AsyncFn(&Instance) -> T) -> Delivered<T> {
        let mut delivered = self.deliver_timed(&[(region, Duration::ZERO)], handler).await;
        delivered.pop().unwrap_or_else(|| panic!("no delivery to {region}"))
    }

    /// Deliveries to the named instances, each starting `after` the start of the whole delivery
    /// (a Region may appear several times: duplicates). They run concurrently; the result is in
    /// schedule order.
    pub async fn deliver_timed<T>(
        &self,
        schedule: &[(&str, Duration)],
        handler: impl AsyncFn(&Instance) -> T,
    ) -> Vec<Delivered<T>> {
        let start = Instant::now();
        let handler = &handler;
        join_all(schedule.iter().map(|(region, after)| {
            let instance = self.instance(region);
            async move {
                tokio::time::sleep_until((start + *after).into()).await;
                let started = start.elapsed();
                let outcome = handler(instance).await;
                Delivered { region: instance.region.clone(), started, finished: start.elapsed(), outcome }
            }
        }))
        .await
    }
}
