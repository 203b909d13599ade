//! The AWS provider: the only module that talks to AWS. Discovery turns live AWS into
//! [`ObservedState`]; the [`Provider`] impl turns steps into API calls and waits for them.

/// The config override that sends a call once, without the SDK's retries: for creates that
/// are not idempotent (see [`create_untokened`]). `once!(aws_sdk_ec2)`.
macro_rules! once {
    ($sdk:ident) => {
        $sdk::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
    };
}

mod adopt;
mod cloud_map;
mod ec2;
mod ecs;
mod ecs_reads;
mod facts;
mod iam;
mod identity;
mod kinds;
mod lock;
mod prefect;

pub use prefect::{PoolStatus, PrefectApi, WorkerStatus, is_tier_refusal};

pub use facts::{WorkerRef, worker_stream_prefix};
pub use identity::Identity;
pub use lock::{DEFAULT_LEASE, LOCK_GROUP, LockInfo};

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde_json::Value;

use crate::apply::{Provider, ProviderError};
use crate::model::{
    Address, Attrs, Conflict, Observed, ObservedState, Outputs, TAG_ADDRESS, TAG_STACK,
};
use crate::secret::SecretValue;
use crate::spec::Spec;

/// How to reach AWS: everything the command line and environment say.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

/// What the provider needs to know about the stack beyond each step's attributes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub stack: String,
    /// Wait for ECS services to be stable after create/update.
    pub wait: bool,
    /// Secret deletion: `None` forces deletion without recovery.
    pub recovery_window_days: Option<u32>,
    /// How long destroy retries dependency errors and waits for deletions.
    pub deadline: Duration,
    /// Where a service that does not stabilize is diagnosed from: the workers' log group and
    /// each worker's work pool (by worker name).
    pub log_group: Option<String>,
    pub pools: BTreeMap<String, String>,
    /// The credential, masked as `(sensitive)` in every worker log line the provider returns
    /// (`logs`, diagnoses): a worker's log may hold its own key.
    pub redact: Option<crate::secret::SecretValue>,
}

pub struct Aws {
    ec2: aws_sdk_ec2::Client,
    ecs: aws_sdk_ecs::Client,
    iam: aws_sdk_iam::Client,
    secrets: aws_sdk_secretsmanager::Client,
    sd: aws_sdk_servicediscovery::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    /// Only for [`Aws::identity`], with limits of its own.
    sts: aws_sdk_sts::Client,
    /// The Prefect API the work pools live in; `None` for commands that touch only AWS.
    pub prefect: Option<PrefectApi>,
    settings: Settings,
    pub region: String,
    /// The stack's lock while this run holds it (`lock.rs`).
    held: std::sync::Arc<std::sync::Mutex<Option<lock::Held>>>,
    lock_check: tokio::sync::Mutex<()>,
    /// Polls of ECS services, coalesced (`ecs_reads.rs`).
    service_reads: ecs_reads::ServiceReads,
    /// `adopt`: resources built outside prefect-ecs taken for the stack's (`adopt.rs`).
    adoption: std::sync::RwLock<Option<adopt::Adoption>>,
}

/// The region, from the command line, then the environment and AWS config files.
pub async fn resolve_region(conn: &Connection) -> Option<String> {
    if let Some(r) = &conn.region {
        return Some(r.clone());
    }
    let mut chain = aws_config::meta::region::RegionProviderChain::default_provider();
    if let Some(p) = &conn.profile {
        chain = aws_config::meta::region::RegionProviderChain::first_try(
            aws_config::profile::ProfileFileRegionProvider::builder()
                .profile_name(p)
                .build(),
        )
        .or_else(aws_config::meta::region::RegionProviderChain::default_provider());
    }
    chain.region().await.map(|r| r.to_string())
}

impl Aws {
    pub async fn connect(conn: &Connection, region: &str, settings: Settings) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            // aws-sdk-rust sets no timeouts by default: a hung connection must not hang a CI step.
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            // AWS throttles in bursts; like Terraform's AWS provider, keep trying well past the
            // SDK's default of 3 attempts (the backoff grows to 20 s between them).
            .retry_config(RetryConfig::standard().with_max_attempts(10));
        if let Some(p) = &conn.profile {
            // A profile named on the command line is the one used, as with the AWS CLI:
            // credentials in the environment do not silently win over it.
            loader = loader.profile_name(p).credentials_provider(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .profile_name(p)
                    .build(),
            );
        }
        if let Some(e) = &conn.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let cfg = loader.load().await;
        let held = std::sync::Arc::default();
        // Every client refuses a change once the stack's lock is no longer this run's.
        let guard = lock::LockGuard(std::sync::Arc::clone(&held));
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(&cfg)
                        .interceptor(guard.clone())
                        .build(),
                )
            };
        }
        Aws {
            ec2: client!(aws_sdk_ec2),
            ecs: client!(aws_sdk_ecs),
            iam: client!(aws_sdk_iam),
            secrets: client!(aws_sdk_secretsmanager),
            sd: client!(aws_sdk_servicediscovery),
            logs: client!(aws_sdk_cloudwatchlogs),
            sqs: client!(aws_sdk_sqs),
            events: client!(aws_sdk_eventbridge),
            sts: aws_sdk_sts::Client::from_conf(identity::sts_config(&cfg)),
            prefect: None,
            settings,
            region: region.to_string(),
            held,
            lock_check: Default::default(),
            service_reads: Default::default(),
            adoption: Default::default(),
        }
    }

    /// Everything of this stack that exists: every kind's discovery at once (`kinds/`).
    pub async fn discover(&self, spec: &Spec) -> Result<ObservedState, ProviderError> {
        let found = kinds::discover(self, spec).await?;
        Ok(ObservedState {
            resources: found.resources,
            conflicts: found.conflicts,
            missing: found.missing,
        })
    }

    fn prefect(&self) -> Result<&PrefectApi, ProviderError> {
        self.prefect
            .as_ref()
            .ok_or_else(|| ProviderError("no Prefect API configured for work pools".into()))
    }

    fn ownership(&self, tags: &BTreeMap<String, String>) -> Ownership {
        match tags.get(TAG_STACK) {
            Some(s) if *s == self.settings.stack => {
                match tags.get(TAG_ADDRESS).and_then(|a| Address::parse(a)) {
                    Some(a) => Ownership::Ours(a),
                    None => Ownership::Foreign(
                        "tagged for this stack but without a valid prefect-ecs:address tag".into(),
                    ),
                }
            }
            Some(other) => Ownership::Foreign(format!("owned by prefect-ecs stack \"{other}\"")),
            None => Ownership::Foreign(
                "not tagged prefect-ecs:stack=".to_string() + &self.settings.stack,
            ),
        }
    }
}

#[derive(Debug)]
enum Ownership {
    Ours(Address),
    Foreign(String),
}

#[derive(Debug, Default)]
struct Found {
    resources: Vec<Observed>,
    conflicts: Vec<Conflict>,
    /// Existing read-only resources the spec names that are not there.
    missing: Vec<String>,
}

impl Found {
    fn merge(&mut self, other: Found) {
        self.resources.extend(other.resources);
        self.conflicts.extend(other.conflicts);
        self.missing.extend(other.missing);
    }

    /// A resource found by name: ours if tagged for this stack at the expected address, or,
    /// when adopting, if it carries no prefect-ecs tag at all.
    fn named(
        &mut self,
        aws: &Aws,
        expected: Address,
        what: String,
        tags: &BTreeMap<String, String>,
    ) -> bool {
        match aws.ownership(tags) {
            Ownership::Ours(a) if a == expected => true,
            Ownership::Foreign(_) if aws.adoptable(tags) => true,
            Ownership::Ours(a) => {
                self.conflicts.push(Conflict {
                    address: expected,
                    description: format!("{what} belongs to {a} of this stack"),
                });
                false
            }
            Ownership::Foreign(why) => {
                self.conflicts.push(Conflict {
                    address: expected,
                    description: format!("{what} exists and is {why}"),
                });
                false
            }
        }
    }
}

fn observed(
    address: Address,
    id: impl Into<String>,
    outputs: &[(&str, &str)],
    attrs: Attrs,
    uses: Vec<String>,
) -> Observed {
    // A kind reports only what its definition declares (`crates/core/src/kinds/`): anything
    // else would be diffed without its shape. Checked wherever discovery runs in tests.
    debug_assert!(
        attrs.keys().all(|k| address.kind.def().attr(k).is_some()),
        "{address} reports an attribute its kind does not declare: {:?}",
        attrs.keys().collect::<Vec<_>>()
    );
    let id = id.into();
    let mut out: Outputs = outputs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.entry("id".into()).or_insert_with(|| id.clone());
    Observed {
        address,
        id,
        outputs: out,
        attrs,
        uses,
        sensitive: None,
        deleting: false,
    }
}

/// Tell the user what a long operation is waiting for (shown at the default log level).
fn note(message: &str) {
    // Inside a step, the progress output shows it next to the resource; elsewhere, the log.
    if !crate::apply::report_wait(message) {
        tracing::info!(target: "prefect_ecs::wait", "{message}");
    }
}

/// A fresh idempotency token for one create call: the SDK resends it on its own retries, so a
/// retried create returns the first resource instead of making a second. It is never reused
/// across calls: a token reused after a delete would hand back the deleted resource.
fn request_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "pe-{nanos:x}-{}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    serde_json::to_value(tags).expect("string map")
}

/// The tags in a resource's attributes (desired or observed).
fn tags_in(attrs: &Attrs) -> BTreeMap<String, String> {
    attrs
        .get(crate::kinds::TAGS)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Tags to set and keys to remove to go from `observed` to `desired`.
fn tag_delta(desired: &Attrs, observed: &Observed) -> (BTreeMap<String, String>, Vec<String>) {
    let want = tags_in(desired);
    let have = tags_in(&observed.attrs);
    let set = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = have
        .keys()
        .filter(|k| !want.contains_key(*k) && !k.starts_with("aws:"))
        .cloned()
        .collect();
    (set, remove)
}

fn attr<'a>(attrs: &'a Attrs, key: &str) -> Result<&'a str, ProviderError> {
    attrs
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError(format!("attribute {key} is missing or not known")))
}

fn attr_strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the wanted `key` differs from the observed one, compared as the diff compares it.
fn changed(desired: &Attrs, observed: &Observed, key: &str) -> bool {
    let kind = observed.address.kind;
    let normal = |a: &Attrs| a.get(key).map(|v| crate::diff::normalize(kind, key, v));
    normal(desired) != normal(&observed.attrs)
}

/// An AWS error as a message: the operation, the error code and AWS's own words.
fn aws_err<E>(op: &str, e: aws_sdk_ec2::error::SdkError<E>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_ec2::error::SdkError;
    let code = e.code().map(String::from);
    let message = match (&code, e.message()) {
        (Some(c), Some(m)) => format!("{op}: {c}: {m}"),
        (Some(c), None) => format!("{op}: {c}"),
        _ => format!("{op}: {}", DisplayErrorContext(&e)),
    };
    let throttled = code.as_deref().is_some_and(|c| THROTTLING.contains(&c));
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => s.raw().status().is_server_error() || throttled,
        _ => false,
    };
    AwsError {
        code,
        message,
        transient,
    }
}

/// The throttling codes of the services prefect-ecs calls.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
];

#[derive(Debug, Clone)]
struct AwsError {
    code: Option<String>,
    message: String,
    /// A failure that may pass, and after which AWS may have acted all the same (no answer,
    /// a timeout, a 5xx) or surely did not (throttling).
    transient: bool,
}

impl AwsError {
    fn is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
}

impl From<AwsError> for ProviderError {
    fn from(e: AwsError) -> Self {
        ProviderError(e.message)
    }
}

/// A create AWS offers no idempotency token for. The SDK would resend it after a lost answer
/// and AWS would make a second resource, so each call is sent once, and after a failure AWS
/// may have acted on (no answer, a timeout, a 5xx), `find` looks for the resource by this
/// stack's address tag before the create is sent again.
async fn create_untokened<T, C, CF, F, FF>(what: &str, create: C, find: F) -> Result<T, AwsError>
where
    C: Fn() -> CF,
    CF: Future<Output = Result<T, AwsError>>,
    F: Fn() -> FF,
    FF: Future<Output = Result<Option<T>, ProviderError>>,
{
    const ATTEMPTS: u32 = 10;
    let mut delay = Duration::from_millis(200);
    for attempt in 1.. {
        match create().await {
            Ok(v) => return Ok(v),
            Err(e) if e.transient && attempt < ATTEMPTS => {
                note(&format!(
                    "{what}: {} (looking for it, then retrying)",
                    e.message
                ));
                crate::apply::idle(tokio::time::sleep(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(20));
                let found = find().await.map_err(|e| AwsError {
                    code: None,
                    message: e.0,
                    transient: false,
                })?;
                if let Some(v) = found {
                    return Ok(v);
                }
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// A delete or detach sent again after its answer was lost finds the thing gone already:
/// that is done, not an error. `codes` are the service's "no such …" for that call.
fn already(codes: &'static [&'static str]) -> impl Fn(AwsError) -> Result<(), AwsError> {
    move |e| if e.is(codes) { Ok(()) } else { Err(e) }
}

/// Retry `op` while it fails with one of `codes` (AWS's "still in use" family), with backoff,
/// until `deadline`; the last error names what it waited for.
async fn retry_codes<T, F, Fut>(
    deadline: Duration,
    codes: &[&str],
    what: &str,
    op: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    retry_when(deadline, |e| e.is(codes), what, op).await
}

/// Retry `op` while `transient` says its error will pass, with backoff, until `deadline`.
async fn retry_when<T, F, Fut>(
    deadline: Duration,
    transient: impl Fn(&AwsError) -> bool,
    what: &str,
    mut op: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let start = Instant::now();
    loop {
        let delay = poll_delay(start.elapsed());
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) && start.elapsed() + delay < deadline => {
                note(&format!("{what}: {} (retrying in {delay:.1?})", e.message));
                // Waiting for AWS to let go is a wait like any other: a stop ends it.
                if crate::apply::pause(delay).await.is_err() {
                    return Err(stopped(&format!("retrying {what}"), &e.message));
                }
            }
            Err(e) if transient(&e) => {
                return Err(ProviderError(format!(
                    "{what}: still failing after {:.0?}: {}",
                    start.elapsed(),
                    e.message
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A wait or a retry ended by a stop (a Ctrl-C): nothing of it is in flight.
fn stopped(what: &str, last: &str) -> ProviderError {
    ProviderError(format!(
        "stopped {what} (interrupted; last: {last}): the next run picks it up"
    ))
}

/// How long to wait before asking AWS again, `elapsed` into a wait: a thirty-second of the time
/// waited so far, between 100 ms and 5 s. What AWS makes us wait for takes from a second (an IAM
/// role to propagate) to minutes (a NAT gateway, a service rollout); a delay proportional to the
/// time already waited sees the change at most ~3% after it happened whatever its length, where
/// doubling delays overshoot by up to 100% (a NAT available at 65 s, seen at 127 s). The price is
/// more reads: ~80 for a 100 s wait, well inside AWS's read rate limits.
fn poll_delay(elapsed: Duration) -> Duration {
    (elapsed / 32).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Poll `check` until it says done, every [`poll_delay`], until `deadline`.
async fn wait_until<F, Fut>(
    deadline: Duration,
    what: &str,
    mut check: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll, ProviderError>>,
{
    let start = Instant::now();
    let mut errors_in_a_row = 0;
    loop {
        let poll = match check().await {
            Ok(p) => {
                errors_in_a_row = 0;
                p
            }
            // A failed read is no news about the thing waited for: poll again, a few times.
            Err(e) if errors_in_a_row < 5 && start.elapsed() < deadline => {
                errors_in_a_row += 1;
                Poll::Pending(format!("unknown ({e})"))
            }
            Err(e) => return Err(e),
        };
        match poll {
            Poll::Done => return Ok(()),
            Poll::Failed(why) => return Err(ProviderError(format!("{what}: {why}"))),
            Poll::Pending(state) => {
                if start.elapsed() > deadline {
                    return Err(ProviderError(format!(
                        "timed out after {:.0?} waiting for {what} (last state: {state})",
                        start.elapsed()
                    )));
                }
                note(&format!(
                    "waiting for {what}: {state} ({:.0?})",
                    start.elapsed()
                ));
                if crate::apply::pause(poll_delay(start.elapsed()))
                    .await
                    .is_err()
                {
                    return Err(stopped(&format!("waiting for {what}"), &state));
                }
            }
        }
    }
}

enum Poll {
    Done,
    Pending(String),
    Failed(String),
}

/// Every step is its kind's (`kinds/`), after the lock check.
impl Provider for Aws {
    async fn create(
        &self,
        address: &Address,
        attrs: &Attrs,
        sensitive: Option<&SecretValue>,
    ) -> Result<Outputs, ProviderError> {
        self.ensure_lock().await?;
        let tags = tags_in(attrs);
        let c = kinds::Create {
            address,
            attrs,
            tags: &tags,
            sensitive,
        };
        kinds::create(self, &c).await
    }

    async fn update(
        &self,
        _: &Address,
        attrs: &Attrs,
        sensitive: Option<&SecretValue>,
        observed: &Observed,
    ) -> Result<Outputs, ProviderError> {
        self.ensure_lock().await?;
        let u = kinds::Update {
            attrs,
            sensitive,
            observed,
        };
        kinds::update(self, &u).await?;
        Ok(observed.outputs.clone())
    }

    async fn delete(&self, observed: &Observed) -> Result<(), ProviderError> {
        self.ensure_lock().await?;
        kinds::delete(self, observed).await
    }
}

/// Discovery, the lock and the Prefect side, for command orchestration (`crate::stack`).
impl crate::stack::Stack for Aws {
    async fn discover(&self, spec: &Spec) -> Result<ObservedState, ProviderError> {
        Aws::discover(self, spec).await
    }

    async fn pool_template(&self) -> Result<Value, ProviderError> {
        self.prefect()?.ecs_template().await
    }

    async fn acquire_lock(
        &self,
        stack: &str,
        lease: Duration,
        operation: &str,
    ) -> Result<Option<String>, ProviderError> {
        Aws::acquire_lock(self, stack, lease, operation).await
    }

    async fn hold_lock(&self, operation: &str) -> std::convert::Infallible {
        Aws::hold_lock(self, operation).await
    }

    async fn release_lock(&self) -> Result<(), ProviderError> {
        Aws::release_lock(self).await
    }

    async fn reserve_pools(
        &self,
        plan: &crate::plan::Plan,
        template: &Value,
    ) -> Result<(), ProviderError> {
        self.ensure_lock().await?;
        self.prefect()?.reserve_pools(plan, template).await
    }

    async fn pool_workers(&self, pool: &str) -> Result<Option<Vec<WorkerStatus>>, ProviderError> {
        self.prefect()?.workers(pool).await
    }

    async fn worker_facts(&self, worker: &WorkerRef, lines: i32) -> crate::diagnose::WorkerFacts {
        Aws::worker_facts(self, worker, lines).await
    }

    async fn network_facts(
        &self,
        existing: &crate::spec::ExistingNetwork,
    ) -> Result<crate::network::NetworkFacts, ProviderError> {
        self.read_network(existing).await
    }

    async fn flow_run_definitions(
        &self,
        families: &[(String, String)],
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let lists = futures::future::join_all(
            families
                .iter()
                .map(|(_, family)| self.active_revisions(family)),
        )
        .await;
        let mut out = Vec::new();
        for ((pool, _), arns) in families.iter().zip(lists) {
            out.extend(arns?.into_iter().map(|arn| (pool.clone(), arn)));
        }
        Ok(out)
    }
}
