//! Command orchestration against an in-memory stack and a fault-injecting wrapper of it: the
//! lock taken and always given back, discovery, the plan, the executor and the online gate,
//! without AWS or Prefect (the integration tests run the same paths against moto).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::Context;
use crate::apply::{Provider, ProviderError};
use crate::cli::RunFlags;
use crate::diagnose::WorkerFacts;
use crate::model::{Address, Attrs, Kind, Observed, ObservedState, Outputs};
use crate::online::WorkerStatus;
use crate::plan::Plan;
use crate::progress::{Mode, Progress};
use crate::render::human::Style;
use crate::secret::SecretValue;
use crate::spec::Spec;
use crate::stack::{Stack, WorkerRef};

const KEY: &str = "pnu_orchestration_test_key";

/// AWS and Prefect in memory: what exists, who holds the lock, the pools' workers. Clones
/// share one world, so a test looks at it after the run that changed it.
#[derive(Clone, Default)]
struct Fake {
    world: Arc<Mutex<World>>,
}

#[derive(Default)]
struct World {
    resources: BTreeMap<Address, Observed>,
    /// The lock's holder, as `acquire_lock` names it.
    lock: Option<String>,
    /// The work pools Prefect has (written by `reserve_pools`).
    pools: std::collections::BTreeSet<String>,
    /// The workers that heartbeat to each pool once it exists.
    workers: BTreeMap<String, Vec<String>>,
    /// Workers heartbeat from this look of their pools on; `None`: never.
    online_from_look: Option<usize>,
    looks: usize,
    /// Every call, in order: `discover`, `create vpc.main`, `release_lock`…
    calls: Vec<String>,
}

impl Fake {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().expect("fake world")
    }

    fn online_from_look(self, look: Option<usize>) -> Fake {
        self.world().online_from_look = look;
        self
    }

    fn held_by(self, holder: &str) -> Fake {
        self.world().lock = Some(holder.into());
        self
    }

    fn called(&self, what: &str) {
        self.world().calls.push(what.into());
    }

    fn has(&self, address: &str) -> bool {
        self.world()
            .resources
            .keys()
            .any(|a| a.to_string() == address)
    }
}

impl Provider for Fake {
    async fn create(
        &self,
        address: &Address,
        attrs: &Attrs,
        sensitive: Option<&SecretValue>,
    ) -> Result<Outputs, ProviderError> {
        self.called(&format!("create {address}"));
        let outputs: Outputs = ["id", "arn", "name", "url", crate::graph::LOG_STREAMS_ARN]
            .iter()
            .map(|o| (o.to_string(), format!("{o}:{address}")))
            .collect();
        let mut world = self.world();
        assert!(
            !world.resources.contains_key(address),
            "{address} created twice"
        );
        if address.kind == Kind::WorkPool {
            assert!(
                world.pools.contains(&address.name),
                "pool {address} created by the executor before reserve_pools wrote it"
            );
        }
        world.resources.insert(
            address.clone(),
            Observed {
                address: address.clone(),
                id: format!("id:{address}"),
                outputs: outputs.clone(),
                attrs: attrs.clone(),
                uses: Vec::new(),
                sensitive: sensitive.cloned(),
                deleting: false,
            },
        );
        Ok(outputs)
    }

    async fn update(
        &self,
        address: &Address,
        attrs: &Attrs,
        sensitive: Option<&SecretValue>,
        observed: &Observed,
    ) -> Result<Outputs, ProviderError> {
        self.called(&format!("update {address}"));
        let mut world = self.world();
        let o = world
            .resources
            .get_mut(address)
            .expect("an update of what exists");
        o.attrs = attrs.clone();
        o.sensitive = sensitive.cloned().or(o.sensitive.take());
        Ok(observed.outputs.clone())
    }

    async fn delete(&self, observed: &Observed) -> Result<(), ProviderError> {
        self.called(&format!("delete {}", observed.address));
        let removed = self.world().resources.remove(&observed.address);
        assert!(removed.is_some(), "{} deleted twice", observed.address);
        Ok(())
    }
}

impl Stack for Fake {
    async fn discover(&self, _: &Spec) -> Result<ObservedState, ProviderError> {
        self.called("discover");
        Ok(ObservedState {
            resources: self.world().resources.values().cloned().collect(),
            conflicts: Vec::new(),
            missing: Vec::new(),
        })
    }

    async fn pool_template(&self) -> Result<Value, ProviderError> {
        Ok(serde_json::from_str(include_str!(
            "../../crates/core/src/testdata/ecs-base-job-template.json"
        ))
        .expect("the template parses"))
    }

    async fn acquire_lock(
        &self,
        _: &str,
        _: Duration,
        operation: &str,
    ) -> Result<Option<String>, ProviderError> {
        self.called("acquire_lock");
        let mut world = self.world();
        match &world.lock {
            Some(holder) => Err(ProviderError(format!("the stack is locked by {holder}"))),
            None => {
                world.lock = Some(format!("this run ({operation})"));
                Ok(None)
            }
        }
    }

    async fn hold_lock(&self, _: &str) -> std::convert::Infallible {
        std::future::pending().await
    }

    async fn release_lock(&self) -> Result<(), ProviderError> {
        self.called("release_lock");
        let mut world = self.world();
        assert!(
            world
                .lock
                .as_deref()
                .is_some_and(|h| h.starts_with("this run")),
            "released a lock this run does not hold"
        );
        world.lock = None;
        Ok(())
    }

    async fn reserve_pools(&self, plan: &Plan, _: &Value) -> Result<(), ProviderError> {
        self.called("reserve_pools");
        let mut world = self.world();
        for c in &plan.changes {
            if c.address.kind == Kind::WorkPool {
                world.pools.insert(c.address.name.clone());
            }
        }
        Ok(())
    }

    async fn pool_workers(&self, pool: &str) -> Result<Option<Vec<WorkerStatus>>, ProviderError> {
        let mut world = self.world();
        world.looks += 1;
        let look = world.looks;
        let online = world.online_from_look.is_some_and(|from| look >= from);
        if !world.pools.contains(pool) {
            return Ok(None);
        }
        let workers = world.workers.get(pool).cloned().unwrap_or_default();
        Ok(Some(
            workers
                .iter()
                .filter(|_| online)
                .map(|w| WorkerStatus {
                    name: w.clone(),
                    status: "ONLINE".into(),
                    last_heartbeat: Some(format!("look {look}")),
                })
                .collect(),
        ))
    }

    async fn worker_facts(&self, worker: &WorkerRef, _: i32) -> WorkerFacts {
        WorkerFacts {
            worker: worker.service.clone(),
            pool: worker.pool.clone(),
            events: vec!["(fake) service was unable to place a task".into()],
            ..Default::default()
        }
    }

    async fn flow_run_definitions(
        &self,
        _: &[(String, String)],
    ) -> Result<Vec<(String, String)>, ProviderError> {
        // No worker runs flows in this world.
        Ok(Vec::new())
    }

    async fn network_facts(
        &self,
        _: &crate::spec::ExistingNetwork,
    ) -> Result<crate::network::NetworkFacts, ProviderError> {
        // The stacks of this world make their own VPC.
        Err(ProviderError(
            "no existing network in the in-memory stack".into(),
        ))
    }
}

/// The fake, failing every call `fail` names (`create nat_gateway.nat[0]`, `release_lock`…).
struct Faulty {
    inner: Fake,
    fail: Box<dyn Fn(&str) -> bool>,
}

impl Faulty {
    fn new(fake: &Fake, fail: impl Fn(&str) -> bool + 'static) -> Faulty {
        Faulty {
            inner: fake.clone(),
            fail: Box::new(fail),
        }
    }

    fn check(&self, call: &str) -> Result<(), ProviderError> {
        if (self.fail)(call) {
            self.inner.called(&format!("{call} (failed)"));
            return Err(ProviderError(format!("injected failure of {call}")));
        }
        Ok(())
    }
}

impl Provider for Faulty {
    async fn create(
        &self,
        address: &Address,
        attrs: &Attrs,
        sensitive: Option<&SecretValue>,
    ) -> Result<Outputs, ProviderError> {
        self.check(&format!("create {address}"))?;
        self.inner.create(address, attrs, sensitive).await
    }

    async fn update(
        &self,
        address: &Address,
        attrs: &Attrs,
        sensitive: Option<&SecretValue>,
        observed: &Observed,
    ) -> Result<Outputs, ProviderError> {
        self.check(&format!("update {address}"))?;
        self.inner.update(address, attrs, sensitive, observed).await
    }

    async fn delete(&self, observed: &Observed) -> Result<(), ProviderError> {
        self.check(&format!("delete {}", observed.address))?;
        self.inner.delete(observed).await
    }
}

impl Stack for Faulty {
    async fn discover(&self, spec: &Spec) -> Result<ObservedState, ProviderError> {
        self.check("discover")?;
        self.inner.discover(spec).await
    }

    async fn pool_template(&self) -> Result<Value, ProviderError> {
        self.check("pool_template")?;
        self.inner.pool_template().await
    }

    async fn acquire_lock(
        &self,
        stack: &str,
        lease: Duration,
        operation: &str,
    ) -> Result<Option<String>, ProviderError> {
        self.check("acquire_lock")?;
        self.inner.acquire_lock(stack, lease, operation).await
    }

    async fn hold_lock(&self, operation: &str) -> std::convert::Infallible {
        self.inner.hold_lock(operation).await
    }

    async fn release_lock(&self) -> Result<(), ProviderError> {
        self.check("release_lock")?;
        self.inner.release_lock().await
    }

    async fn reserve_pools(&self, plan: &Plan, template: &Value) -> Result<(), ProviderError> {
        self.check("reserve_pools")?;
        self.inner.reserve_pools(plan, template).await
    }

    async fn pool_workers(&self, pool: &str) -> Result<Option<Vec<WorkerStatus>>, ProviderError> {
        self.check(&format!("pool_workers {pool}"))?;
        self.inner.pool_workers(pool).await
    }

    async fn worker_facts(&self, worker: &WorkerRef, lines: i32) -> WorkerFacts {
        self.inner.worker_facts(worker, lines).await
    }

    async fn flow_run_definitions(
        &self,
        families: &[(String, String)],
    ) -> Result<Vec<(String, String)>, ProviderError> {
        self.inner.flow_run_definitions(families).await
    }

    async fn network_facts(
        &self,
        existing: &crate::spec::ExistingNetwork,
    ) -> Result<crate::network::NetworkFacts, ProviderError> {
        self.inner.network_facts(existing).await
    }
}

fn dev_spec() -> Spec {
    let env = |k: &str| match k {
        "PREFECT_API_URL" => Some("http://127.0.0.1:4200/api".to_string()),
        "PREFECT_API_KEY" => Some(KEY.to_string()),
        _ => None,
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/dev.toml");
    crate::spec::load(&path, &env, Some("us-east-1")).expect("stacks/dev.toml is valid")
}

/// A run of `verb` ("apply" or "destroy") on `cloud`, as the command runs it.
fn run<S: Stack>(
    cloud: S,
    verb: &'static str,
    worker_timeout: Duration,
) -> miette::Result<ExitCode> {
    let spec = dev_spec();
    let desired = verb == "apply";
    let ctx = Context::with_cloud(
        spec,
        "us-east-1".into(),
        Some(SecretValue::new(KEY.into())),
        cloud,
        desired,
        Duration::from_secs(60),
        10,
    );
    let flags = RunFlags {
        auto_approve: true,
        no_wait: false,
        worker_timeout,
        json: false,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(ctx.locked(verb, async {
            let (_, plan) = ctx.observe_and_plan().await?;
            let progress = Progress::new(Mode::Lines, Style { color: false }, verb);
            ctx.run(plan, &flags, progress).await
        }))
}

/// The dev stack's fake, its worker heartbeating to its pool from the first look.
fn dev_fake() -> Fake {
    let fake = Fake::default().online_from_look(Some(1));
    for w in &dev_spec().workers {
        fake.world()
            .workers
            .entry(w.work_pool.clone())
            .or_default()
            .push(w.name.clone());
    }
    fake
}

fn graph_size() -> usize {
    let spec = dev_spec();
    crate::graph::build(&spec, "us-east-1", None, None)
        .expect("the graph builds")
        .graph
        .node_count()
}

#[test]
fn apply_creates_the_stack_under_the_lock_then_plan_is_empty_and_destroy_leaves_nothing() {
    let fake = dev_fake();
    let code = run(fake.clone(), "apply", Duration::from_secs(5)).expect("apply");
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(fake.world().resources.len(), graph_size());
    assert_eq!(fake.world().lock, None, "the lock is given back");
    {
        let world = fake.world();
        let calls = &world.calls;
        assert_eq!(calls.first().map(String::as_str), Some("acquire_lock"));
        assert_eq!(calls.last().map(String::as_str), Some("release_lock"));
        let reserve = calls.iter().position(|c| c == "reserve_pools").unwrap();
        let first_create = calls.iter().position(|c| c.starts_with("create")).unwrap();
        assert!(
            reserve < first_create,
            "pools are written before any AWS change"
        );
    }

    fake.world().calls.clear();
    let code = run(fake.clone(), "apply", Duration::from_secs(5)).expect("second apply");
    assert_eq!(code, ExitCode::SUCCESS);
    let changes: Vec<String> = fake
        .world()
        .calls
        .iter()
        .filter(|c| !matches!(c.as_str(), "acquire_lock" | "discover" | "release_lock"))
        .cloned()
        .collect();
    assert!(
        changes.is_empty(),
        "a second apply changes nothing: {changes:?}"
    );

    let code = run(fake.clone(), "destroy", Duration::from_secs(5)).expect("destroy");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        fake.world().resources.is_empty(),
        "left: {:?}",
        fake.world().resources.keys().collect::<Vec<_>>()
    );
    assert_eq!(fake.world().lock, None);
}

#[test]
fn a_lock_held_by_another_run_stops_before_discovery_and_stays_theirs() {
    let fake = dev_fake().held_by("ci job 41 on runner-7");
    let err = run(fake.clone(), "apply", Duration::from_secs(5)).expect_err("locked");
    assert!(err.to_string().contains("ci job 41 on runner-7"), "{err}");
    let world = fake.world();
    assert_eq!(world.calls, ["acquire_lock"]);
    assert_eq!(world.lock.as_deref(), Some("ci job 41 on runner-7"));
}

#[test]
fn a_failed_create_fails_what_needs_it_the_rest_goes_on_the_lock_is_given_back_and_the_next_run_converges()
 {
    let fake = dev_fake();
    let faulty = Faulty::new(&fake, |call| call.starts_with("create nat_gateway."));
    let code = run(faulty, "apply", Duration::from_secs(5)).expect("apply runs");
    assert_eq!(code, ExitCode::FAILURE);
    assert_eq!(
        fake.world().lock,
        None,
        "the lock is given back after a failure"
    );
    assert!(!fake.has("nat_gateway.nat[0]"));
    // The private route needs the NAT gateway, the service needs the private routes.
    let private_routes = fake
        .world()
        .resources
        .keys()
        .any(|a| a.kind == Kind::RouteTable && a.name.starts_with("private"));
    assert!(
        !private_routes,
        "a route to the failed NAT gateway was made"
    );
    assert!(
        !fake
            .world()
            .resources
            .keys()
            .any(|a| a.kind == Kind::EcsService),
        "the service was started without its route to the internet"
    );
    // What does not need the NAT gateway is made.
    assert!(
        fake.world()
            .resources
            .keys()
            .any(|a| a.kind == Kind::LogGroup),
        "independent resources go on"
    );

    let code = run(fake.clone(), "apply", Duration::from_secs(5)).expect("apply again");
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(fake.world().resources.len(), graph_size());
    // The names looked for above are the stack's own.
    assert!(fake.has("nat_gateway.nat[0]"));
    assert!(
        fake.world()
            .resources
            .keys()
            .any(|a| a.kind == Kind::RouteTable && a.name.starts_with("private"))
    );
}

#[test]
fn a_failed_release_is_reported_and_a_failed_run_keeps_its_own_error() {
    let fake = dev_fake();
    let faulty = Faulty::new(&fake, |call| call == "release_lock");
    let err = run(faulty, "apply", Duration::from_secs(5)).expect_err("release failed");
    assert!(
        err.to_string()
            .contains("could not give the lock of stack \"dev\" back"),
        "{err}"
    );
    assert!(err.to_string().contains("force-unlock dev"), "{err}");

    // Discovery fails and so does the release: the error is discovery's.
    let fake = dev_fake();
    let faulty = Faulty::new(&fake, |call| call == "release_lock" || call == "discover");
    let err = run(faulty, "apply", Duration::from_secs(5)).expect_err("discovery failed");
    assert!(
        err.to_string().contains("injected failure of discover"),
        "{err}"
    );
    assert!(fake.world().resources.is_empty());
}

#[test]
fn a_discovery_failure_changes_nothing_and_gives_the_lock_back() {
    let fake = dev_fake();
    let faulty = Faulty::new(&fake, |call| call == "discover");
    let err = run(faulty, "apply", Duration::from_secs(5)).expect_err("discovery failed");
    assert!(err.to_string().contains("discover"), "{err}");
    let world = fake.world();
    assert!(world.resources.is_empty());
    assert!(!world.calls.iter().any(|c| c == "reserve_pools"));
    assert_eq!(world.lock, None);
}

#[test]
fn apply_waits_for_the_workers_heartbeat() {
    let fake = dev_fake().online_from_look(Some(3));
    let code = run(fake.clone(), "apply", Duration::from_secs(30)).expect("apply");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        fake.world().looks >= 3,
        "apply ended before the worker was online"
    );
}

#[test]
fn a_worker_that_never_comes_online_fails_apply_at_the_deadline_with_the_diagnosis() {
    let fake = dev_fake().online_from_look(None);
    let err = run(fake.clone(), "apply", Duration::from_secs(1)).expect_err("never online");
    let text = err.to_string();
    assert!(
        text.contains("worker dev-worker did not come online within 1s"),
        "{text}"
    );
    assert!(
        text.contains("(fake) service was unable to place a task"),
        "{text}"
    );
    assert!(text.contains("the infrastructure is applied"), "{text}");
    assert_eq!(fake.world().resources.len(), graph_size());
    assert_eq!(fake.world().lock, None);
}

#[test]
fn a_failed_look_at_the_pools_is_no_news_and_the_gate_looks_again() {
    let fake = dev_fake();
    let looks = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&looks);
    let faulty = Faulty::new(&fake, move |call| {
        if !call.starts_with("pool_workers") {
            return false;
        }
        let mut n = seen.lock().unwrap();
        *n += 1;
        *n == 1
    });
    let code = run(faulty, "apply", Duration::from_secs(30)).expect("apply");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(*looks.lock().unwrap() >= 2);
}

/// Issue 15, item 13: the destroy prompt names what cannot be undone.
#[test]
fn the_destroy_prompt_names_what_cannot_be_undone() {
    let fake = dev_fake();
    run(fake.clone(), "apply", Duration::from_secs(5)).expect("apply");
    let spec = dev_spec();
    let graph = crate::graph::build(&spec, "us-east-1", None, None).expect("the graph builds");
    let observed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(fake.discover(&spec))
        .expect("discovery");
    let plan = crate::plan::destroy(&spec.name, &graph, &observed).expect("a destroy plan");
    let lost = super::context::irreversible(&plan, None);
    assert!(
        lost.iter().any(|l| l.starts_with("work pool \"")),
        "{lost:?}"
    );
    assert!(
        lost.iter()
            .any(|l| l.contains("secret.api_key is deleted at once")),
        "{lost:?}"
    );
    let kept = super::context::irreversible(&plan, Some(7));
    assert!(kept.iter().all(|l| !l.contains("secret")), "{kept:?}");
}
