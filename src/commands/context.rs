//! A command's run on one stack: the spec, AWS and Prefect connected, the lock, discovery and
//! the plan, the executor, and the online gate after an apply.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use miette::{Result, miette};

use super::interrupt::{Interrupt, confirm, watch_interrupts};
use super::settings::{Settings, credential, prefect_api};
use crate::apply::{execute_until, schedule};
use crate::cli::RunFlags;
use crate::graph::{self, StackGraph};
use crate::model::ObservedState;
use crate::plan::{self, Plan};
use crate::progress::Progress;
use crate::provider::{self, Aws};
use crate::secret::SecretValue;
use crate::spec::{self, Spec};
use crate::stack::{Stack, WorkerRef};

/// One command's run on one stack: its spec, its connections and its lock.
pub struct Context<S = Aws> {
    pub spec: Spec,
    pub region: String,
    /// Plan and apply compare with the desired stack; destroy, `status`… do not.
    desired: bool,
    credential: Option<SecretValue>,
    /// Built by the first plan, from the spec and the Prefect server's default `ecs` base job
    /// template (read alongside discovery).
    pub graph: std::sync::OnceLock<StackGraph>,
    pub pool_template: std::sync::OnceLock<serde_json::Value>,
    /// AWS and Prefect: [`Aws`], or an in-memory stack in tests.
    pub aws: S,
    /// Ctrl-C, listened for from before the lock is taken to the end of the run.
    interrupt: Arc<Interrupt>,
    lock_lease: Duration,
    parallelism: u16,
    /// The AWS account the run acts in (STS, before anything else); `None` in tests.
    pub account: Option<String>,
    /// `--target` and `--replace`: what the plan holds (all of the stack when empty).
    pub selection: plan::Selection,
}

impl Context<Aws> {
    /// The spec at `path` and connections to AWS and its Prefect API. `desired`: plan and
    /// apply compare with the spec; `wait`: waits for services to be stable.
    pub async fn new(
        path: &Path,
        settings: &Settings,
        desired: bool,
        wait: bool,
    ) -> Result<Context> {
        let mut spec = settings.load(path)?;
        let region = settings.region(spec.region.as_deref()).await?;
        let credential = credential(&spec)?;
        let prefect = prefect_api(&spec, credential.clone())?;
        let provider = provider::Settings {
            stack: spec.name.clone(),
            wait,
            recovery_window_days: spec.secret.recovery_window_days,
            deadline: settings.timeout,
            log_group: Some(spec.logs.group.clone()),
            pools: spec
                .workers
                .iter()
                .map(|w| (w.name.clone(), w.work_pool.clone()))
                .collect(),
            redact: credential.clone(),
        };
        let mut aws = Aws::connect(&settings.conn, &region, provider).await;
        // Who we are, before any other call: a first run's missing credentials, unknown
        // profile or unreachable endpoint is one sentence within seconds.
        let identity = aws.identity(&settings.conn).await?;
        same_account(&spec, &identity.account)?;
        // Destroy (and the read-only commands) need no subnets: tags that select none then
        // stop only what would put workers in them.
        if let Err(e) = aws.resolve_tagged_subnets(&mut spec).await
            && desired
        {
            return Err(e.into());
        }
        aws.prefect = Some(prefect);
        let mut ctx = Context::with_cloud(
            spec,
            region,
            credential,
            aws,
            desired,
            settings.lock_lease,
            settings.parallelism,
        );
        ctx.account = Some(identity.account);
        Ok(ctx)
    }
}

/// Workers are not put in an existing network they cannot work in: every failed check named,
/// nothing changed.
fn existing_network_usable(
    spec: &Spec,
    existing: &spec::ExistingNetwork,
    facts: &crate::network::NetworkFacts,
) -> Result<()> {
    let failed: Vec<String> = crate::network::check(spec, existing, facts)
        .into_iter()
        .filter_map(|(what, result)| result.err().map(|e| format!("  - {what}: {e}")))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(miette!(
        help = "`prefect-ecs verify` shows every check of the network",
        "the existing network [network] vpc_id = \"{}\" cannot run the workers, nothing was changed:\n{}",
        existing.vpc_id,
        failed.join("\n")
    ))
}

/// A spec pinned to an account (`[stack] account_id`) runs only with credentials of that
/// account: checked before any call but STS's.
pub fn same_account(spec: &Spec, account: &str) -> Result<()> {
    match &spec.account_id {
        Some(want) if want != account => {
            let env = spec
                .env
                .as_ref()
                .map(|e| format!(" (env {e})"))
                .unwrap_or_default();
            Err(miette!(
                help = "use the credentials (AWS_PROFILE, --profile) of the stack's account, or correct [stack] account_id",
                "stack \"{}\"{env} belongs in AWS account {want}, but these credentials are of account {account}: nothing was read or changed",
                spec.name
            ))
        }
        _ => Ok(()),
    }
}

impl<S: Stack> Context<S> {
    /// A run on `cloud` for `spec`, connecting nothing (tests build theirs).
    #[allow(clippy::too_many_arguments)]
    pub fn with_cloud(
        spec: Spec,
        region: String,
        credential: Option<SecretValue>,
        cloud: S,
        desired: bool,
        lock_lease: Duration,
        parallelism: u16,
    ) -> Context<S> {
        Context {
            spec,
            region,
            desired,
            credential,
            graph: Default::default(),
            pool_template: Default::default(),
            aws: cloud,
            interrupt: Default::default(),
            lock_lease,
            parallelism,
            account: None,
            selection: Default::default(),
        }
    }

    /// What a run acts on: environment, account, region, Prefect workspace.
    pub fn run_target(&self) -> crate::render::Target {
        crate::render::Target::new(&self.spec, self.account.clone(), &self.region)
    }

    /// `stack "dev" in account 123456789012, us-east-1, Prefect workspace …`: what a run acts
    /// on, for the plan's header and the confirmation prompt.
    pub fn target(&self) -> String {
        self.run_target().describe(&self.spec.name)
    }

    pub fn worker_ref(&self, w: &spec::Worker) -> WorkerRef {
        WorkerRef {
            cluster: self.spec.cluster.name.clone(),
            service: w.name.clone(),
            pool: w.work_pool.clone(),
            log_group: self.spec.logs.group.clone(),
        }
    }

    /// Run `work` holding the stack's lock, renewed while it runs; the lock is given back
    /// however `work` ends (a Ctrl-C at the prompt included), and a failed release is always
    /// reported.
    pub async fn locked(
        &self,
        verb: &str,
        work: impl std::future::Future<Output = Result<ExitCode>>,
    ) -> Result<ExitCode> {
        let stack = &self.spec.name;
        // Listening before the lock is taken: no Ctrl-C from here on leaves it held.
        let watcher = watch_interrupts(self.interrupt.clone(), stack.clone())?;
        let result = match self.aws.acquire_lock(stack, self.lock_lease, verb).await {
            Err(e) => {
                watcher.abort();
                return Err(e.into());
            }
            Ok(took_over) => {
                if let Some(note) = took_over {
                    eprintln!("{note}");
                }
                tokio::select! {
                    biased;
                    result = work => result,
                    never = self.aws.hold_lock(verb) => match never {},
                }
            }
        };
        let released = self.aws.release_lock().await;
        watcher.abort();
        let unlock = |e: crate::apply::ProviderError| {
            format!(
                "could not give the lock of stack \"{stack}\" back: {e}; it stays held until its lease runs out, or: prefect-ecs force-unlock {stack}"
            )
        };
        match (result, released) {
            (result, Ok(())) => result,
            (Ok(_), Err(e)) => Err(miette!("{}", unlock(e))),
            (Err(failed), Err(e)) => {
                eprintln!("Error: {}", unlock(e));
                Err(failed)
            }
        }
    }

    pub async fn plan(&self) -> Result<Plan> {
        Ok(self.observe_and_plan().await?.1)
    }

    /// The plan and what it was computed from (a saved plan fingerprints it).
    pub async fn observe_and_plan(&self) -> Result<(ObservedState, Plan)> {
        if !self.desired {
            // Beside discovery: the flow runs' task definitions, which destroy removes too.
            let families = graph::flow_run_families(&self.spec);
            let (observed, flow_runs) = tokio::join!(
                self.aws.discover(&self.spec),
                self.aws.flow_run_definitions(&families)
            );
            let (observed, flow_runs) = (observed?, flow_runs?);
            let mut plan = self.destroy_plan(&observed)?;
            plan.remove_flow_run_definitions(&flow_runs);
            return Ok((observed, plan));
        }
        // Independent reads: the template, the live stack and an existing network in one
        // wave, not three.
        let network = async {
            match &self.spec.network.existing {
                Some(e) => self.aws.network_facts(e).await.map(|f| Some((e, f))),
                None => Ok(None),
            }
        };
        let (template, observed, network) = tokio::join!(
            self.aws.pool_template(),
            self.aws.discover(&self.spec),
            network
        );
        let (template, observed) = (template?, observed?);
        if let Some((existing, facts)) = network? {
            existing_network_usable(&self.spec, existing, &facts)?;
        }
        if self.graph.get().is_none() {
            let graph = graph::build(
                &self.spec,
                &self.region,
                self.credential.clone(),
                Some(&template),
            )?;
            let _ = self.graph.set(graph);
            let _ = self.pool_template.set(template);
        }
        let plan = plan::compute_selected(
            &self.spec.name,
            self.graph.get(),
            &observed,
            &self.selection,
        )?;
        Ok((observed, plan))
    }

    /// Everything the stack owns deleted, in the inverse of the order the spec creates it in.
    pub fn destroy_plan(&self, observed: &ObservedState) -> Result<Plan> {
        // The graph's shape depends on the spec alone: no credential, no template needed.
        let graph = graph::build(&self.spec, &self.region, None, None)?;
        Ok(plan::destroy(&self.spec.name, &graph, observed)?)
    }

    pub async fn run(&self, plan: Plan, flags: &RunFlags, progress: Progress) -> Result<ExitCode> {
        let applying = self.desired;
        let redeployed = plan.redeployed_services();
        let code = self.execute(plan, flags, progress).await?;
        // Apply is done when the workers are online, not when ECS says "steady state".
        if code == ExitCode::SUCCESS && applying && !flags.no_wait {
            self.wait_online(flags.worker_timeout, &redeployed).await?;
        }
        Ok(code)
    }

    /// Wait for a heartbeat from every worker that should run (the gate, `online.rs`,
    /// decides what counts); at the deadline, say why not.
    async fn wait_online(&self, timeout: Duration, redeployed: &BTreeSet<String>) -> Result<()> {
        use crate::online::{Awaited, Gate, PoolAnswer, next_delay};
        let mut gate = Gate::new(
            self.spec
                .workers
                .iter()
                .filter(|w| w.desired_count > 0)
                .map(|w| Awaited {
                    worker: w.name.clone(),
                    pool: w.work_pool.clone(),
                }),
            redeployed,
        );
        let start = std::time::Instant::now();
        let mut delay = None;
        loop {
            // One read per pool, every pool at once: the gate's look costs one round trip
            // however many workers the stack has.
            let pools = gate.pools();
            let reads =
                futures::future::join_all(pools.iter().map(|p| self.aws.pool_workers(p))).await;
            let answers = pools
                .iter()
                .zip(&reads)
                .map(|(pool, read)| {
                    let answer = match read {
                        Err(_) => PoolAnswer::Failed,
                        Ok(None) => PoolAnswer::Missing,
                        Ok(Some(ws)) => PoolAnswer::Workers(ws),
                    };
                    (pool.clone(), answer)
                })
                .collect();
            for w in gate.look(&answers) {
                eprintln!("worker {} is online in work pool {}", w.worker, w.pool);
            }
            if gate.done() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                break;
            }
            let names: Vec<&str> = gate.pending().iter().map(|w| w.worker.as_str()).collect();
            tracing::info!(
                target: "prefect_ecs::wait",
                "waiting for {} to send a heartbeat to its work pool ({:.0?} of {})",
                names.join(", "),
                start.elapsed(),
                humantime::format_duration(timeout)
            );
            let next = next_delay(delay);
            delay = Some(next);
            tokio::time::sleep(next.min(timeout.saturating_sub(start.elapsed()))).await;
        }
        let pending: Vec<&spec::Worker> = gate
            .pending()
            .iter()
            .filter_map(|a| self.spec.workers.iter().find(|w| w.name == a.worker))
            .collect();
        let mut facts = futures::future::join_all(
            pending
                .iter()
                .map(|w| async { self.aws.worker_facts(&self.worker_ref(w), 30).await }),
        )
        .await;
        for f in &mut facts {
            f.heartbeat_predates_deploy = gate.predates_deploy(&f.worker);
        }
        let diagnosis: Vec<String> = facts.iter().map(crate::diagnose::render).collect();
        Err(miette!(
            "{} did not come online within {} (the infrastructure is applied; apply again, or `prefect-ecs status`, once fixed):\n\n{}",
            pending
                .iter()
                .map(|w| format!("worker {}", w.name))
                .collect::<Vec<_>>()
                .join(", "),
            humantime::format_duration(timeout),
            diagnosis.join("\n").trim_end()
        ))
    }

    async fn execute(
        &self,
        plan: Plan,
        flags: &RunFlags,
        mut progress: Progress,
    ) -> Result<ExitCode> {
        progress.plan(&plan, self.run_target(), &self.spec);
        if plan.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if !flags.auto_approve {
            let lost = irreversible(&plan, self.spec.secret.recovery_window_days);
            if !lost.is_empty() {
                println!("\nThis cannot be undone:");
                for line in &lost {
                    println!("  - {line}");
                }
            }
            confirm(progress.verb(), &self.target(), &self.interrupt).await?;
        }
        if let Some(template) = self.pool_template.get() {
            self.aws.reserve_pools(&plan, template).await?;
        }
        progress.start(schedule(&plan).0.len());
        let report = execute_until(
            &plan,
            &self.aws,
            self.parallelism.into(),
            |e| progress.event(&e),
            &self.interrupt.stop,
        )
        .await;
        Ok(if progress.finish(&report) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// What a plan deletes for good, for the prompt: a work pool (its queues and the link of its
/// flow runs to it go with it) and a secret deleted without a recovery window.
pub(super) fn irreversible(plan: &Plan, recovery_window_days: Option<u32>) -> Vec<String> {
    use crate::model::Kind;
    use crate::plan::Action;
    plan.changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
        .filter_map(|c| match c.address.kind {
            Kind::WorkPool => Some(format!(
                "work pool \"{}\" is deleted in Prefect, with its queues; its flow runs lose their pool",
                c.address.name
            )),
            Kind::Secret if recovery_window_days.is_none() => Some(format!(
                "{} is deleted at once, without a recovery window ([secret] recovery_window_days keeps it restorable)",
                c.address
            )),
            _ => None,
        })
        .collect()
}
