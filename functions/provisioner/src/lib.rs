//! provisioner: the CloudFormation custom resource `Custom::GlobalTableReplicas`, which makes a
//! DynamoDB table's replica set (global tables version 2019.11.21) match a list of Regions, and
//! **always answers CloudFormation**.
//!
//! ```yaml
//! UserSessionsReplicas:
//!   Type: Custom::GlobalTableReplicas
//!   Properties:
//!     ServiceToken: !GetAtt ProvisionerFunction.Arn
//!     ServiceTimeout: 900
//!     TableName: !Ref UserSessions
//!     Regions: [us-east-1, eu-west-1, ap-southeast-1]
//! ```
//!
//! How the guarantees of the README section "provisioner: Custom::GlobalTableReplicas" are met:
//!
//! * **Only CloudFormation's requests, for its own stacks** ([`trust`]): before any AWS call or
//!   PUT, the ResponseURL must be CloudFormation's response bucket of this Region and the StackId
//!   of this function's account and Region; anything else is refused, logged and returned as the
//!   invocation's error, with nothing done and nothing answered.
//! * **Always an answer.** The function takes raw JSON ([`request`]), so a malformed event still
//!   reaches our code and is answered FAILED with a reason that says what to fix. The work runs in
//!   a spawned task: a panic becomes a `JoinError` (the release profile keeps `panic = "unwind"`)
//!   and is answered FAILED. A deadline guard fires a margin before the Lambda deadline (or the
//!   end of the `ServiceTimeout`), aborts the work and answers FAILED saying what was in progress.
//!   Whichever comes first answers; the answer is sent exactly once per invocation.
//! * **Long waits continue.** Near the Lambda deadline, while replicas are still changing, the
//!   function re-invokes itself asynchronously with the event plus its state ([`continuation`])
//!   and returns without answering; the budget is the resource's `ServiceTimeout` (default 3600 s)
//!   measured from the first invocation, after which it answers FAILED.
//! * **Stable PhysicalResourceId** ([`identity`]): versioned (`v1/...`) and deterministic on
//!   Create; an Update echoes the id it was given, in any format, unless the `TableName` or the
//!   home Region changed (a replacement); never invented on failure.
//! * **Bounded, well-formed answers** ([`response`], [`delivery`]): the body stays within 4096
//!   bytes; the PUT has an empty Content-Type and is retried with backoff, never past the deadline;
//!   an answer that cannot be delivered is logged as an error.
//! * **Replicas are reconciled** ([`plan`], [`reconcile`]): one replica change per `UpdateTable`,
//!   waiting for ACTIVE between changes; Delete removes only the replicas recorded, as a tag on
//!   the table, for exactly its PhysicalResourceId and claimed by no other record ([`record`]).

pub mod config;
pub mod consistency;
pub mod continuation;
pub mod delivery;
pub mod dynamodb;
pub mod identity;
pub mod plan;
pub mod properties;
pub mod reconcile;
pub mod record;
pub mod regions;
pub mod request;
pub mod response;
pub mod trust;

pub use config::Config;
pub use continuation::{Continuation, LambdaContinuation};
pub use delivery::ResponseClient;
pub use dynamodb::DynamoDbClients;

use crate::consistency::Consistency;
use crate::dynamodb::Tables;
use crate::plan::Goal;
use crate::properties::{LenientProperties, Properties, Rules};
use crate::reconcile::{LogContext, Progress, Reconciled, Reconciler, TimeLimits};
use crate::record::Owner;
use crate::request::{ContinuationState, Envelope, Request};
use crate::response::{Answer, Status};
use lambda_runtime::{Context, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// What the logs say instead of a value that came from NoEcho properties.
const WITHHELD: &str = "(withheld: NoEcho)";

/// Everything the handler needs, built once per container (see `main.rs`).
pub struct Deps {
    pub config: Config,
    pub dynamodb: Arc<dyn DynamoDbClients>,
    pub continuation: Arc<dyn Continuation>,
    pub responses: ResponseClient,
}

/// How an invocation ended (the function's return value, handy with `cargo lambda invoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Success,
    Failed,
    /// The wait continues in a new invocation, which will answer.
    Continued,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    pub outcome: Outcome,
    pub physical_resource_id: Option<String>,
    pub reason: Option<String>,
    /// Whether CloudFormation's ResponseURL accepted the answer.
    pub delivered: bool,
    pub delivery_attempts: usize,
}

/// What the work task decided.
#[derive(Debug)]
enum Verdict {
    Answer(Answer),
    Continued { attempt: u32 },
}

/// Facts about this invocation the work task needs.
#[derive(Debug, Clone)]
struct Invocation {
    /// Name or ARN to re-invoke for a continuation.
    function: Option<String>,
    started_at_ms: u64,
    attempt: u32,
    settings_applied: BTreeSet<String>,
    removed: BTreeSet<String>,
    /// The PhysicalResourceId of any FAILED answer.
    failure_id: String,
    no_echo: bool,
}

/// One log event about the request, with the fields every such event carries (request type,
/// logical id, stack, CloudFormation's request id) before its own.
macro_rules! request_event {
    ($level:ident, $received:expr, $($rest:tt)+) => {
        tracing::$level!(
            request_type = %$received.log.request_type,
            logical_resource_id = %$received.envelope.logical_resource_id,
            stack_id = %$received.envelope.stack_id,
            request_id = %$received.envelope.request_id,
            $($rest)+
        )
    };
}

/// Handles one custom-resource event (or continuation). Every event this function may act on is
/// answered to CloudFormation (or logged when the answer cannot be delivered), and returns `Ok`:
/// a Lambda error would only make Lambda retry an event that was already answered.
///
/// The one error is [`Refused`]: an event whose ResponseURL is not CloudFormation's response
/// bucket of this Region, or whose StackId is not of this function's account and Region
/// ([`trust`]). Nothing is done and nothing is PUT (the URL may be a trap, or another stack's), the
/// reason is logged as an error, and the invocation fails so that it counts in the function's
/// Errors metric; Lambda's retries of it are refused the same way, then it lands in the
/// on-failure destination.
///
/// The CloudFormation contract, in phases: read what any event has; refuse an event that is not
/// CloudFormation's for this stack; run the replica work under the deadline guard, a panic or the
/// guard becoming a FAILED answer; then answer, exactly once, unless the work continues in a new
/// invocation (which answers).
pub async fn handle(event: LambdaEvent<Value>, deps: &Arc<Deps>) -> Result<Summary, Refused> {
    let (payload, context) = event.into_parts();
    let received = Received::read(&payload, &deps.config);
    received.log_request(&context);
    let origin = trust::Origin {
        home_region: &deps.config.home_region,
        function_arn: &context.invoked_function_arn,
        allow_local_response_url: deps.config.allow_local_response_url,
    };
    let response_url =
        match trust::check(&origin, received.envelope.response_url.as_deref(), &received.envelope.stack_id) {
            Ok(()) => received.envelope.response_url.clone().unwrap_or_default(),
            Err(untrusted) => return Err(received.refused(untrusted)),
        };
    let (invocation, limits) = received.invocation(&context, &deps.config);
    let verdict = run_guarded(payload, deps, invocation, limits.clone(), &received).await;
    let answer = match verdict {
        Verdict::Continued { attempt } => return Ok(received.continued(attempt)),
        Verdict::Answer(answer) => answer,
    };
    Ok(answer_cloudformation(deps, &received, &response_url, answer, limits.lambda_deadline).await)
}

/// An event the provisioner does not act on and does not answer: the invocation's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: {0}; nothing was done and CloudFormation was not answered")]
pub struct Refused(#[from] pub trust::Untrusted);

impl From<Refused> for lambda_runtime::Diagnostic {
    fn from(refused: Refused) -> Self {
        Self { error_type: "Refused".to_owned(), error_message: refused.to_string() }
    }
}

/// What any event has, read leniently: enough to log it and to answer it, valid or not.
struct Received {
    envelope: Envelope,
    lenient: LenientProperties,
    continuation: Option<ContinuationState>,
    log: LogContext,
    /// The PhysicalResourceId of any FAILED answer.
    failure_id: String,
}

impl Received {
    fn read(payload: &Value, config: &Config) -> Self {
        let envelope = Envelope::read(payload);
        let lenient = LenientProperties::read(payload.get("ResourceProperties").unwrap_or(&Value::Null));
        let continuation = payload
            .get(request::CONTINUATION_KEY)
            .and_then(|state| serde_json::from_value::<ContinuationState>(state.clone()).ok());
        let log = LogContext {
            request_type: envelope.request_type.clone().unwrap_or_default(),
            logical_resource_id: envelope.logical_resource_id.clone(),
            request_id: envelope.request_id.clone(),
            no_echo: envelope.no_echo,
        };
        let failure_id = envelope.physical_resource_id.clone().unwrap_or_else(|| {
            identity::mint(
                &config.home_region,
                envelope.stack_name(),
                lenient.table_name.as_deref(),
                &envelope.logical_resource_id,
            )
        });
        Self { envelope, lenient, continuation, log, failure_id }
    }

    fn log_request(&self, context: &Context) {
        let envelope = &self.envelope;
        request_event!(
            info,
            self,
            physical_resource_id =
                if envelope.no_echo { WITHHELD } else { envelope.physical_resource_id.as_deref().unwrap_or("") },
            continuation = self.continuation.as_ref().map(|c| c.attempt).unwrap_or(0),
            lambda_request_id = %context.request_id,
            table = if envelope.no_echo { "" } else { self.lenient.table_name.as_deref().unwrap_or("") },
            "custom resource request"
        );
    }

    fn refused(&self, untrusted: trust::Untrusted) -> Refused {
        request_event!(
            error,
            self,
            outcome = "REFUSED",
            refused = %untrusted,
            "refused: not CloudFormation's request for this function's stacks; nothing done, nothing answered"
        );
        Refused(untrusted)
    }

    fn continued(&self, attempt: u32) -> Summary {
        request_event!(
            info,
            self,
            outcome = "CONTINUED",
            continuation = attempt,
            "the wait continues in a new invocation, which will answer"
        );
        Summary {
            outcome: Outcome::Continued,
            physical_resource_id: None,
            reason: None,
            delivered: false,
            delivery_attempts: 0,
        }
    }

    /// This invocation's facts and time: the Lambda deadline, and the ServiceTimeout budget
    /// measured from the first invocation of the request.
    fn invocation(&self, context: &Context, config: &Config) -> (Invocation, TimeLimits) {
        let now_ms = epoch_ms(SystemTime::now());
        let continuation = self.continuation.as_ref();
        let started_at_ms = continuation.map(|c| c.started_at_ms.min(now_ms)).unwrap_or(now_ms);
        let service_timeout = self
            .envelope
            .service_timeout
            .or(self.lenient.service_timeout)
            .unwrap_or(properties::DEFAULT_SERVICE_TIMEOUT);
        let limits = TimeLimits {
            lambda_deadline: lambda_deadline(context.deadline, now_ms, config.default_invocation_time),
            budget_end: instant_at(started_at_ms.saturating_add(service_timeout.as_millis() as u64), now_ms),
            service_timeout,
            margin: config.deadline_margin,
            poll: config.poll_interval,
            continue_reserve: config.continue_reserve,
        };
        let invocation = Invocation {
            function: own_function_name(context, config),
            started_at_ms,
            attempt: continuation.map(|c| c.attempt).unwrap_or(0),
            settings_applied: continuation.map(|c| c.settings_applied.iter().cloned().collect()).unwrap_or_default(),
            removed: continuation.map(|c| c.removed.iter().cloned().collect()).unwrap_or_default(),
            failure_id: self.failure_id.clone(),
            no_echo: self.envelope.no_echo,
        };
        (invocation, limits)
    }

    fn failed(&self, reason: String) -> Verdict {
        Verdict::Answer(Answer::failed(self.failure_id.clone(), reason, self.envelope.no_echo))
    }
}

/// The replica work in its own task, under the deadline guard: the first to finish decides. A
/// panic or the guard is a FAILED answer that says what was in progress.
async fn run_guarded(
    payload: Value,
    deps: &Arc<Deps>,
    invocation: Invocation,
    limits: TimeLimits,
    received: &Received,
) -> Verdict {
    let log = &received.log;
    let progress = Progress::default();
    progress.set("starting");
    let mut work =
        tokio::spawn(provision(payload, Arc::clone(deps), invocation, limits.clone(), progress.clone(), log.clone()));
    let guard = tokio::time::sleep_until(limits.guard_at());
    tokio::pin!(guard);
    tokio::select! {
        // A finished work wins a tie with the guard: it may already have queued a continuation.
        biased;
        joined = &mut work => match joined {
            Ok(verdict) => verdict,
            Err(e) if e.is_panic() => {
                let message = panic_message(e.into_panic());
                tracing::error!(logical_resource_id = %log.logical_resource_id, request_id = %log.request_id, panic = %message, "the provisioner panicked");
                received.failed(format!(
                    "internal error: the provisioner panicked ({message}) while {}; this is a bug: please report it with the function's logs",
                    progress.get()
                ))
            }
            Err(e) => received.failed(format!("internal error: the provisioning task ended unexpectedly: {e}")),
        },
        () = &mut guard => {
            work.abort();
            let reason = if limits.budget_binds() {
                format!(
                    "the ServiceTimeout of {} s is nearly spent (deadline guard) while {}; set ServiceTimeout higher (up to 3600)",
                    limits.service_timeout.as_secs(), progress.get()
                )
            } else {
                format!(
                    "the function's time limit is nearly reached (deadline guard, {} ms before the Lambda timeout) while {}; raise the function timeout (900 s recommended)",
                    limits.margin.as_millis(), progress.get()
                )
            };
            tracing::error!(logical_resource_id = %log.logical_resource_id, request_id = %log.request_id, "deadline guard fired");
            received.failed(reason)
        }
    }
}

/// Sends the answer to the ResponseURL (bounded retries, never past the Lambda deadline) and logs
/// how it went.
async fn answer_cloudformation(
    deps: &Deps,
    received: &Received,
    response_url: &str,
    answer: Answer,
    lambda_deadline: Instant,
) -> Summary {
    let body = response::body(&received.envelope, &answer);
    // With NoEcho nothing that came from the properties (table, Regions, reasons quoting them)
    // reaches the logs; CloudFormation still gets the full reason.
    let no_echo = received.envelope.no_echo || answer.no_echo;
    if !body.dropped_data_keys.is_empty() {
        let dropped =
            if no_echo { format!("{} keys", body.dropped_data_keys.len()) } else { body.dropped_data_keys.join(", ") };
        tracing::warn!(%dropped, "Data keys dropped to keep the response within 4096 bytes");
    }
    let delivery_deadline = lambda_deadline.checked_sub(Duration::from_millis(200)).unwrap_or_else(Instant::now);
    let delivery = delivery::deliver_with(&deps.config.delivery, delivery_deadline, || {
        deps.responses.put(response_url, &body.bytes)
    })
    .await;
    let outcome = match body.status {
        Status::Success => Outcome::Success,
        Status::Failed => Outcome::Failed,
    };
    let reason = serde_json::from_slice::<Value>(&body.bytes)
        .ok()
        .and_then(|v| v.get("Reason").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let logged_reason = if no_echo { WITHHELD } else { reason.as_str() };
    let logged_id = if no_echo { WITHHELD } else { answer.physical_resource_id.as_str() };
    if delivery.delivered {
        request_event!(
            info,
            received,
            outcome = body.status.as_str(),
            physical_resource_id = %logged_id,
            reason = %logged_reason,
            attempts = delivery.attempts.len(),
            "answered CloudFormation"
        );
    } else {
        request_event!(
            error,
            received,
            outcome = body.status.as_str(),
            physical_resource_id = %logged_id,
            reason = %logged_reason,
            attempts = ?delivery.attempts,
            "the response could not be delivered to CloudFormation's ResponseURL"
        );
    }
    Summary {
        outcome,
        physical_resource_id: Some(answer.physical_resource_id),
        reason: Some(reason),
        delivered: delivery.delivered,
        delivery_attempts: delivery.attempts.len(),
    }
}

/// The work: parse, validate, reconcile; returns the answer or a continuation.
async fn provision(
    payload: Value,
    deps: Arc<Deps>,
    invocation: Invocation,
    limits: TimeLimits,
    progress: Progress,
    log: LogContext,
) -> Verdict {
    let config = &deps.config;
    let home = config.home_region.as_str();
    let failed =
        |reason: String| Verdict::Answer(Answer::failed(invocation.failure_id.clone(), reason, invocation.no_echo));
    let request = match request::parse(&payload) {
        Ok((request, _)) => request,
        Err(e) => return failed(e.to_string()),
    };
    let rules = Rules { home_region: home, known_regions: &config.known_regions };
    let work = Work { deps: &deps, payload: &payload, invocation: &invocation, limits, progress, log };
    match request {
        Request::Create(create) => match Properties::parse(&create.resource_properties, &rules) {
            // Outside ProvisionerTableNames: answered before any AWS call.
            Ok(props) if let Err(outside) = config.allows_table(&props.table_name) => failed(outside.to_string()),
            Ok(props) => {
                let logical = create.logical_resource_id.as_str();
                let id = identity::mint(home, request::stack_name(&create.stack_id), Some(&props.table_name), logical);
                let owner = Owner::of(&record::Request {
                    id: &id,
                    logical_resource_id: logical,
                    home_region: home,
                    table: &props.table_name,
                    non_replacing_update: false,
                });
                work.ensure(&Goal::create(&props, home), &props, id, owner).await
            }
            Err(e) => failed(e.to_string()),
        },
        Request::Update(update) => match Properties::parse(&update.resource_properties, &rules) {
            Ok(props) if let Err(outside) = config.allows_table(&props.table_name) => failed(outside.to_string()),
            Ok(props) => {
                let old = LenientProperties::read(&update.old_resource_properties);
                let logical = update.logical_resource_id.as_str();
                let decision = identity::for_update(&identity::UpdateRequest {
                    id: &update.physical_resource_id,
                    home_region: home,
                    stack_name: request::stack_name(&update.stack_id),
                    logical_resource_id: logical,
                    new_table: &props.table_name,
                    old_table: old.table_name.as_deref(),
                });
                // A replacement is a new resource: CloudFormation sees the new id and sends Delete
                // for the old one once the stack update completes. Anything else keeps its id.
                let replacement = decision.replacement.is_some();
                let goal = if replacement { Goal::create(&props, home) } else { Goal::update(&props, &old, home) };
                if let Some(why) = &decision.replacement
                    && !work.log.no_echo
                {
                    tracing::info!(logical_resource_id = %logical, old = %update.physical_resource_id, new = %decision.id, why = ?why, "replacement");
                }
                let owner = Owner::of(&record::Request {
                    id: &decision.id,
                    logical_resource_id: logical,
                    home_region: home,
                    table: &props.table_name,
                    non_replacing_update: !replacement,
                });
                work.ensure(&goal, &props, decision.id, owner).await
            }
            Err(e) => failed(e.to_string()),
        },
        Request::Delete(delete) => {
            work.delete(&delete.physical_resource_id, &delete.resource_properties, &delete.logical_resource_id).await
        }
        // The request type is checked by `request::parse`; the enum is non-exhaustive upstream.
        _ => failed("unsupported RequestType".to_owned()),
    }
}

struct Work<'a> {
    deps: &'a Deps,
    payload: &'a Value,
    invocation: &'a Invocation,
    limits: TimeLimits,
    progress: Progress,
    log: LogContext,
}

impl Work<'_> {
    fn reconciler<'g>(&'g self, goal: &'g Goal, owner: Owner) -> Reconciler<'g> {
        Reconciler {
            tables: Tables::new(self.deps.dynamodb.as_ref()),
            goal,
            owner,
            limits: self.limits.clone(),
            progress: self.progress.clone(),
            log: self.log.clone(),
            settings_applied: self.invocation.settings_applied.clone(),
            last_logged: None,
            removed: self.invocation.removed.clone(),
        }
    }

    fn failed(&self, reason: String) -> Verdict {
        Verdict::Answer(Answer::failed(self.invocation.failure_id.clone(), reason, self.invocation.no_echo))
    }

    /// Create and Update: reach `goal`, then answer SUCCESS with `id` and the Data.
    async fn ensure(&self, goal: &Goal, props: &Properties, id: String, owner: Owner) -> Verdict {
        let mut reconciler = self.reconciler(goal, owner);
        match reconciler.run().await {
            Reconciled::Done(Some(view)) => {
                self.progress.set("collecting the replicas' ARNs");
                let tables = Tables::new(self.deps.dynamodb.as_ref());
                let names = props.region_names();
                let limit = self
                    .limits
                    .guard_at()
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(Duration::from_secs(1))
                    .min(Duration::from_secs(5));
                let facts = tokio::time::timeout(limit, tables.region_facts(&names, &props.table_name))
                    .await
                    .unwrap_or_default();
                let data = plan::data(props, &goal.home, &view.arn, &facts);
                let reason = match (props.consistency, &props.witness) {
                    (Consistency::Eventual, _) => format!("replicas ACTIVE in {}", names.join(", ")),
                    (Consistency::Strong, None) => {
                        format!("replicas ACTIVE in {} (multi-Region strong consistency)", names.join(", "))
                    }
                    (Consistency::Strong, Some(witness)) => format!(
                        "replicas ACTIVE in {}, witness ACTIVE in {witness} (multi-Region strong consistency)",
                        names.join(", ")
                    ),
                };
                Verdict::Answer(Answer::success(id, reason, data, props.no_echo))
            }
            Reconciled::Done(None) => self.failed(format!("table {} does not exist in {}", goal.table, goal.home)),
            Reconciled::Continue => self.continue_later(reconciler.settings_applied, reconciler.removed).await,
            Reconciled::Failed(reason) => self.failed(reason),
        }
    }

    /// Delete: remove what this id recorded as added and no other record claims (or keep it, per
    /// RetainReplicasOnDelete). An id that owns nothing touches nothing.
    async fn delete(&self, id: &str, properties: &Value, logical_resource_id: &str) -> Verdict {
        let success =
            |reason: &str| Verdict::Answer(Answer::success(id.to_owned(), reason, Vec::new(), self.invocation.no_echo));
        if identity::names_no_table(id) {
            return success("nothing to delete: the Create failed before naming a valid table");
        }
        let props = LenientProperties::read(properties);
        let Some(table) = props.table_name.as_deref() else {
            return success("nothing to delete: the properties name no valid table, so no replica was added");
        };
        // Outside ProvisionerTableNames nothing is touched, not even read. SUCCESS, not FAILED: this
        // is also the rollback of a Create refused for the same reason, which must not block the
        // stack.
        if let Err(outside) = self.deps.config.allows_table(table) {
            return success(&format!(
                "nothing done: TableName `{table}` is not one of the tables this provisioner may manage ({}: {}); replicas this resource may have added to it stay: add it to {} before deleting to have them removed, or remove them by hand",
                config::TABLE_NAMES_PARAMETER,
                outside.allowed,
                config::TABLE_NAMES_PARAMETER
            ));
        }
        let home = self.deps.config.home_region.as_str();
        let owner = Owner::of(&record::Request {
            id,
            logical_resource_id,
            home_region: home,
            table,
            non_replacing_update: false,
        });
        let tables = Tables::new(self.deps.dynamodb.as_ref());
        if props.retain_replicas_on_delete {
            if props.retain_unreadable {
                tracing::warn!(
                    logical_resource_id,
                    "RetainReplicasOnDelete is not true/false: keeping the replicas (the safe side)"
                );
            }
            self.forget_record(&tables, home, table, &owner).await;
            return success("replicas retained (RetainReplicasOnDelete)");
        }
        let goal = Goal::delete(table, home);
        let mut reconciler = self.reconciler(&goal, owner.clone());
        match reconciler.run().await {
            Reconciled::Done(Some(_)) => {
                self.forget_record(&tables, home, table, &owner).await;
                let removed = &reconciler.removed;
                if removed.is_empty() {
                    success(
                        "nothing to remove: no replica recorded as added by this PhysicalResourceId (and claimed by no other) is left",
                    )
                } else {
                    let list = removed.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
                    success(&format!("removed the replicas this resource added: {list}"))
                }
            }
            Reconciled::Done(None) => success("the table is already gone"),
            Reconciled::Continue => self.continue_later(reconciler.settings_applied, reconciler.removed).await,
            Reconciled::Failed(reason) => self.failed(reason),
        }
    }

    /// Removes this id's record from the table (best effort: the resource is going away). An id
    /// without a record writes nothing.
    async fn forget_record(&self, tables: &Tables<'_>, home: &str, table: &str, owner: &Owner) {
        let result = async {
            let Some((view, observed)) = tables.observe(home, table, owner).await? else { return Ok(()) };
            if observed.recorded.is_empty() {
                return Ok(());
            }
            tables.write_record(home, &view.arn, owner, &BTreeSet::new()).await
        }
        .await;
        if let Err(e) = result {
            let error = if self.log.no_echo { e.aws_code().unwrap_or("error").to_owned() } else { e.to_string() };
            tracing::warn!(%error, record = %owner.describe(), "could not remove the record of added replicas from the table");
        }
    }

    /// Queues the same event, with the state, for a new invocation.
    async fn continue_later(&self, settings_applied: BTreeSet<String>, removed: BTreeSet<String>) -> Verdict {
        let Some(function) = self.invocation.function.as_deref() else {
            return self.failed(format!(
                "still {} and the wait cannot continue: {}",
                self.progress.get(),
                continuation::ContinuationError::NoFunctionName
            ));
        };
        let state = ContinuationState {
            started_at_ms: self.invocation.started_at_ms,
            attempt: self.invocation.attempt + 1,
            settings_applied: settings_applied.into_iter().collect(),
            removed: removed.into_iter().collect(),
        };
        let event = request::continuation_event(self.payload, &state);
        let queued = tokio::time::timeout(
            self.deps.config.continue_reserve,
            self.deps.continuation.continue_later(function, &event),
        )
        .await;
        match queued {
            Ok(Ok(())) => Verdict::Continued { attempt: state.attempt },
            Ok(Err(e)) => self.failed(format!(
                "still {} and the wait could not continue in a new invocation: {e}; the function needs lambda:InvokeFunction on itself",
                self.progress.get()
            )),
            Err(_) => self.failed(format!(
                "still {} and queueing the continuation took longer than {} ms",
                self.progress.get(),
                self.deps.config.continue_reserve.as_millis()
            )),
        }
    }
}

/// Name (or qualified ARN) to re-invoke: the ARN this invocation was called with keeps the same
/// version or alias.
fn own_function_name(context: &Context, config: &Config) -> Option<String> {
    let arn = context.invoked_function_arn.trim();
    if arn.starts_with("arn:") {
        return Some(arn.to_owned());
    }
    config.function_name.clone().or_else(|| {
        let name = context.env_config.function_name.trim();
        (!name.is_empty()).then(|| name.to_owned())
    })
}

fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The tokio instant of a wall-clock time (ms since the epoch); the past maps to now.
/// The invocation's deadline. Lambda always sends an epoch time ahead of now; a header of 0 (not
/// run by Lambda) or one already past when the invocation starts is no deadline at all, and the
/// configured budget applies. (cargo-lambda's Runtime API emulator sends the timeout itself,
/// `600000`, which read as an epoch time lies in 1970: the guard would answer FAILED at once.)
fn lambda_deadline(deadline_ms: u64, now_ms: u64, default_invocation_time: Duration) -> Instant {
    if deadline_ms > now_ms {
        return instant_at(deadline_ms, now_ms);
    }
    if deadline_ms != 0 {
        tracing::warn!(
            deadline_ms,
            now_ms,
            budget_ms = default_invocation_time.as_millis() as u64,
            "the runtime's deadline is not in the future: using the configured invocation budget"
        );
    }
    Instant::now() + default_invocation_time
}

fn instant_at(epoch_ms: u64, now_ms: u64) -> Instant {
    let now = Instant::now();
    // A nonsensical far-future time (not from Lambda) is capped rather than overflowing.
    let ahead = Duration::from_millis(epoch_ms.saturating_sub(now_ms)).min(Duration::from_secs(86_400));
    now + ahead
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_function_name_prefers_the_invoked_arn() {
        let config = Config { function_name: Some("provisioner".into()), ..Config::for_region("us-east-1") };
        let mut context = Context::default();
        assert_eq!(own_function_name(&context, &config).as_deref(), Some("provisioner"));
        context.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:provisioner:live".into();
        assert_eq!(
            own_function_name(&context, &config).as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:provisioner:live")
        );
        assert_eq!(own_function_name(&Context::default(), &Config::for_region("us-east-1")), None);
    }

    #[test]
    fn wall_clock_times_map_to_instants_never_in_the_past() {
        let before = Instant::now();
        assert!(instant_at(1_000, 5_000) >= before, "the past maps to now");
        let later = instant_at(15_000, 5_000);
        assert!(later >= before + Duration::from_secs(10));
        let capped = instant_at(u64::MAX, 0);
        assert!(capped <= Instant::now() + Duration::from_secs(86_401), "no overflow, capped at a day");
    }

    #[test]
    fn a_deadline_that_is_absent_or_already_past_falls_back_to_the_budget() {
        let budget = Duration::from_secs(900);
        let now_ms = 1_795_742_089_332;
        let before = Instant::now();
        // A real Lambda deadline, 30 s ahead, is kept.
        let real = lambda_deadline(now_ms + 30_000, now_ms, budget);
        assert!(real >= before + Duration::from_secs(29) && real <= Instant::now() + Duration::from_secs(30));
        // No deadline (0) and cargo-lambda's relative `600000` both get the configured budget.
        for header in [0, 600_000, now_ms] {
            let deadline = lambda_deadline(header, now_ms, budget);
            assert!(deadline >= before + budget, "header {header}: the budget applies");
        }
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(Box::new("boom")), "boom");
        assert_eq!(panic_message(Box::new(String::from("bang"))), "bang");
        assert_eq!(panic_message(Box::new(7)), "no message");
    }
}
