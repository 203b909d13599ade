//! The commands: thin glue from flags to spec → graph → discovery → plan → executor.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::CommandFactory;
use miette::{IntoDiagnostic, Result, miette};

use crate::apply::{execute_until, schedule};
use crate::cli::{Cli, Command, Global, GraphFormat, PlanFormat, RunFlags, ShowFlags};
use crate::graph::{self, StackGraph};
use crate::model::ObservedState;
use crate::plan::{self, Plan};
use crate::planfile::{Basis, PlanFile};
use crate::progress::{Mode, Progress};
use crate::provider::{Aws, Connection, PrefectApi, Settings, WorkerRef, resolve_region};
use crate::render::human::{self, Style};
use crate::render::{PlanDoc, markdown};
use crate::secret::SecretValue;
use crate::spec::{self, ApiKeySource, Spec};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let conn = Connection {
        region: cli.global.region.clone(),
        profile: cli.global.profile.clone(),
        endpoint_url: cli.global.endpoint_url.clone(),
    };
    let style = style(&cli.global);
    match &cli.command {
        Command::Validate { spec } => {
            let s = load(spec, &cli.global)?;
            println!(
                "{}: stack \"{}\" is valid ({} worker(s)).",
                spec.display(),
                s.name,
                s.workers.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { spec, format } => {
            let s = load(spec, &cli.global)?;
            let region = s
                .region
                .clone()
                .or_else(|| hint_region(&cli.global))
                .unwrap_or_else(|| "(region)".into());
            let g = graph::build(&s, &region, None, None)?;
            match format {
                GraphFormat::Dot => print!("{}", g.to_dot()),
                GraphFormat::Json => println!("{:#}", g.to_json()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { spec, show, out } => runtime()?.block_on(async {
            let ctx = Context::new(spec, &cli.global, &conn, true, true).await?;
            let (observed, plan) = ctx.observe_and_plan().await?;
            let doc = PlanDoc::new(&plan);
            if let Some(out) = out {
                save_plan(spec, out, &ctx, &observed, &doc, show.format())?;
            }
            print_plan(&doc, show, style)
        }),
        Command::Apply { spec, run } => runtime()?.block_on(async {
            if let Some(saved) = read_saved_plan(spec)? {
                return apply_saved(spec, saved, run, &cli.global, &conn, style).await;
            }
            let ctx = Context::new(spec, &cli.global, &conn, true, !run.no_wait).await?;
            ctx.locked("apply", async {
                let plan = ctx.plan().await?;
                let progress = progress(run, style, "apply")?;
                ctx.run(plan, run, progress, cli.global.parallelism).await
            })
            .await
        }),
        Command::Destroy { spec, run } => runtime()?.block_on(async {
            let ctx = Context::new(spec, &cli.global, &conn, false, !run.no_wait).await?;
            ctx.locked("destroy", async {
                let observed = ctx.aws.discover(&ctx.spec).await?;
                let plan = ctx.destroy_plan(&observed)?;
                let progress = progress(run, style, "destroy")?;
                ctx.run(plan, run, progress, cli.global.parallelism).await
            })
            .await
        }),
        Command::ForceUnlock { stack } => runtime()?.block_on(async {
            let region = resolve_region(&conn)
                .await
                .ok_or_else(|| miette!("no AWS region: pass --region or set AWS_REGION"))?;
            let settings = Settings {
                stack: stack.clone(),
                wait: false,
                recovery_window_days: None,
                deadline: Duration::from_secs(60),
                log_group: None,
                pools: Default::default(),
                redact: None,
            };
            let aws = Aws::connect(&conn, &region, settings).await;
            match aws.lock_info(stack).await? {
                None => println!("stack \"{stack}\" is not locked."),
                Some(info) => {
                    aws.break_lock(stack).await?;
                    println!("released the lock of stack \"{stack}\" held by {info}.");
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Show { plan, show } => {
            let saved = read_saved_plan(plan)?.ok_or_else(|| {
                miette!(
                    "{} is not a saved plan: make one with `prefect-ecs plan --out {} SPEC`",
                    plan.display(),
                    plan.display()
                )
            })?;
            if show.format() == PlanFormat::Human {
                println!(
                    "Saved plan of {} (region {}), made {} by prefect-ecs {}.\n",
                    saved.spec_path, saved.region, saved.created_at, saved.prefect_ecs_version
                );
            }
            print_plan(&saved.plan, show, style)
        }
        Command::Output { spec, json } => runtime()?.block_on(async {
            let ctx = Context::new(spec, &cli.global, &conn, false, true).await?;
            let observed = ctx.aws.discover(&ctx.spec).await?;
            let outputs = crate::outputs::collect(&observed);
            if outputs.is_empty() {
                return Err(miette!(
                    "stack \"{}\" has no resources in {}: run `prefect-ecs apply {}` first",
                    ctx.spec.name,
                    ctx.region,
                    spec.display()
                ));
            }
            if *json {
                println!("{:#}", serde_json::json!(outputs));
            } else {
                print!("{}", crate::outputs::render(&outputs));
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Verify { spec } => runtime()?.block_on(verify(spec, &cli.global, &conn)),
        Command::Status { spec } => runtime()?.block_on(async {
            let ctx = Context::new(spec, &cli.global, &conn, false, true).await?;
            let facts = futures::future::join_all(
                ctx.spec
                    .workers
                    .iter()
                    .map(|w| async { ctx.aws.worker_facts(&ctx.worker_ref(w), 0).await }),
            )
            .await;
            println!("stack \"{}\" in {}", ctx.spec.name, ctx.region);
            for f in &facts {
                print!("\n{}", crate::diagnose::render_status(f));
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Logs {
            spec,
            worker,
            follow,
            since,
        } => runtime()?.block_on(async {
            let ctx = Context::new(spec, &cli.global, &conn, false, true).await?;
            if let Some(w) = worker
                && !ctx.spec.workers.iter().any(|x| &x.name == w)
            {
                return Err(miette!(
                    "no worker \"{w}\" in {} (workers: {})",
                    spec.display(),
                    ctx.spec
                        .workers
                        .iter()
                        .map(|w| w.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as i64;
            let mut start = now_ms - since.as_millis() as i64;
            let mut seen = std::collections::HashSet::new();
            let workers: Vec<&str> = match worker {
                Some(w) => vec![w.as_str()],
                None => ctx.spec.workers.iter().map(|w| w.name.as_str()).collect(),
            };
            loop {
                let events = ctx
                    .aws
                    .worker_log_events(&ctx.spec.logs.group, &workers, start)
                    .await?;
                for (stream, ts, message, id) in events {
                    if seen.insert(id) {
                        println!(
                            "{} {stream} {message}",
                            humantime::format_rfc3339_millis(
                                std::time::UNIX_EPOCH + Duration::from_millis(ts.max(0) as u64)
                            )
                        );
                        start = start.max(ts);
                    }
                }
                if !*follow {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "prefect-ecs",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `verify`: every check one line, pass or fail, with the fix; exit 1 when any failed.
async fn verify(path: &Path, g: &Global, conn: &Connection) -> Result<ExitCode> {
    use crate::verify::{Check, image_reference, worker_permissions};
    let spec = load(path, g)?;
    let mut checks: Vec<Check> = Vec::new();
    let region = match (&spec.region, &g.region) {
        (Some(s), _) => Some(s.clone()),
        (None, _) => resolve_region(conn).await,
    };
    let Some(region) = region else {
        println!("FAIL  AWS region: none set; set [stack] region, --region or AWS_REGION");
        return Ok(ExitCode::FAILURE);
    };
    let settings = Settings {
        stack: spec.name.clone(),
        wait: false,
        recovery_window_days: None,
        deadline: g.timeout,
        log_group: None,
        pools: Default::default(),
        redact: None,
    };
    let aws = Aws::connect(conn, &region, settings).await;
    match aws.available_zones().await {
        Ok(zones) => {
            checks.push((
                format!("AWS answers in {region}"),
                Ok(format!("{} zones available", zones.len())),
            ));
            let missing: Vec<&str> = spec
                .network
                .zones
                .iter()
                .map(|z| z.az.as_str())
                .filter(|az| !zones.iter().any(|z| z == az))
                .collect();
            checks.push((
                "availability zones".into(),
                if missing.is_empty() {
                    Ok(format!("{} used, all available", spec.network.zones.len()))
                } else {
                    Err(format!(
                        "{} not available in {region}; pick others with [network] availability_zones",
                        missing.join(", ")
                    ))
                },
            ));
        }
        Err(e) => checks.push((
            format!("AWS answers in {region}"),
            Err(format!(
                "{e}; check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and region"
            )),
        )),
    }
    let nats = match spec.network.nat {
        spec::NatMode::None => 0,
        spec::NatMode::Single => 1,
        spec::NatMode::PerAz => spec.network.zones.len(),
    };
    // The stack's own addresses are part of what it needs, not others' use of the quota.
    let needed = |ours: usize| match ours {
        0 => format!("{nats} needed"),
        _ => format!(
            "{nats} needed ({} held by this stack already)",
            ours.min(nats)
        ),
    };
    match aws.elastic_ips().await {
        Ok((Some(limit), used, ours)) => checks.push((
            "Elastic IPs for the NAT gateways".into(),
            if used as i64 + nats.max(ours) as i64 <= limit {
                Ok(format!("{}, {used} of {limit} in use by others", needed(ours)))
            } else {
                Err(format!(
                    "{} but {used} of {limit} are in use by others: release unused addresses or ask AWS for a higher quota",
                    needed(ours)
                ))
            },
        )),
        Ok((None, used, ours)) => checks.push((
            "Elastic IPs for the NAT gateways".into(),
            Ok(format!(
                "{}, {used} in use by others (the account limit is not reported)",
                needed(ours)
            )),
        )),
        Err(e) => checks.push(("Elastic IPs for the NAT gateways".into(), Err(e.to_string()))),
    }
    let credential = credential(&spec, path);
    let prefect = credential
        .as_ref()
        .ok()
        .map(|c| prefect_api(&spec, c.clone()));
    let mut template = None;
    match (credential, prefect) {
        (Err(e), _) => checks.push(("Prefect credential".into(), Err(e.to_string()))),
        (Ok(_), Some(Ok(api))) => {
            checks.push((
                format!("Prefect API at {} with the credential", api.url()),
                api.check_access()
                    .await
                    .map(|_| "reachable, credential accepted".to_owned())
                    .map_err(|e| {
                        format!("{e}; check [prefect] api_url (or account_id and workspace_id) and the credential")
                    }),
            ));
            match api.ecs_template().await {
                Ok(t) => {
                    template = Some(t);
                    let mut kinds = Vec::new();
                    for pool in &spec.work_pools {
                        if let Ok(Some(p)) = api.pool_status(&pool.name).await
                            && p.kind != "ecs"
                        {
                            kinds.push(format!("{} is of type {}", pool.name, p.kind));
                        }
                    }
                    checks.push((
                        "work pool type ecs".into(),
                        if kinds.is_empty() {
                            Ok("the server offers ecs pools".into())
                        } else {
                            Err(format!(
                                "{}: a pool's type cannot change; rename the worker's work_pool",
                                kinds.join(", ")
                            ))
                        },
                    ));
                }
                Err(e) => checks.push(("work pool type ecs".into(), Err(e.to_string()))),
            }
        }
        (Ok(_), Some(Err(e))) => checks.push(("Prefect API".into(), Err(e.to_string()))),
        (Ok(_), None) => {}
    }
    for w in &spec.workers {
        checks.push((
            format!("image of worker {}", w.name),
            image_reference(&w.image)
                .map(|_| w.image.clone())
                .map_err(|e| format!("{e}; fix [[worker]] image")),
        ));
    }
    let graph = graph::build(&spec, &region, None, template.as_ref())?;
    checks.push((
        "worker permissions in the IAM policies".into(),
        worker_permissions(&graph),
    ));
    let mut failed = 0;
    for (name, result) in &checks {
        match result {
            Ok(detail) => println!("ok    {name}: {detail}"),
            Err(fix) => {
                failed += 1;
                println!("FAIL  {name}: {fix}");
            }
        }
    }
    println!("\n{} check(s), {failed} failed.", checks.len());
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Colour only for a terminal, and never when asked not to (`--no-color`, `NO_COLOR`).
fn style(g: &Global) -> Style {
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Style {
        color: !g.no_color && !no_color_env && std::io::stdout().is_terminal(),
    }
}

/// Exit 2 for "there are changes" only when asked: 1 stays "error" either way.
fn plan_exit(show: &ShowFlags, doc: &PlanDoc) -> ExitCode {
    if show.detailed_exitcode && !doc.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_plan(doc: &PlanDoc, show: &ShowFlags, style: Style) -> Result<ExitCode> {
    match show.format() {
        PlanFormat::Human => print!("{}", human::render(doc, style)),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(doc).into_diagnostic()?),
        PlanFormat::Markdown => print!("{}", markdown::render(doc)),
    }
    Ok(plan_exit(show, doc))
}

fn progress(run: &RunFlags, style: Style, verb: &'static str) -> Result<Progress> {
    let mode = if run.json {
        if !run.auto_approve {
            return Err(miette!(
                "{verb} --json cannot ask for confirmation: pass --auto-approve (or apply a saved plan)"
            ));
        }
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        Mode::Live
    } else {
        Mode::Lines
    };
    Ok(Progress::new(mode, style, verb))
}

/// `Some` when `path` holds a plan saved by `plan --out` rather than a spec.
fn read_saved_plan(path: &Path) -> Result<Option<PlanFile>> {
    let bytes = std::fs::read(path).map_err(|e| miette!("cannot read {}: {e}", path.display()))?;
    PlanFile::parse(&bytes).map_err(|e| miette!("{}: {e}", path.display()))
}

fn save_plan(
    spec: &Path,
    out: &Path,
    ctx: &Context,
    observed: &ObservedState,
    doc: &PlanDoc,
    format: PlanFormat,
) -> Result<()> {
    let spec_bytes = std::fs::read(spec).into_diagnostic()?;
    let basis = Basis {
        spec_bytes: &spec_bytes,
        region: &ctx.region,
        graph: ctx.graph.get().expect("plan builds the desired graph"),
        observed,
    };
    let file = PlanFile::new(&spec.to_string_lossy(), &basis, doc.clone());
    std::fs::write(out, file.to_bytes())
        .map_err(|e| miette!("cannot write the plan to {}: {e}", out.display()))?;
    let note = format!(
        "Saved the plan to {}: `prefect-ecs apply {}` applies exactly this plan, and refuses if the spec or the stack changed in the meantime.",
        out.display(),
        out.display()
    );
    // Machine-readable stdout stays exactly the document.
    if format == PlanFormat::Human {
        println!("{note}\n");
    } else {
        eprintln!("{note}");
    }
    Ok(())
}

/// Apply a saved plan: recompute it from the spec it names and from AWS as it is now, and run
/// it only if nothing it was computed from has changed, so what runs is what was reviewed.
async fn apply_saved(
    file: &Path,
    saved: PlanFile,
    flags: &RunFlags,
    g: &Global,
    conn: &Connection,
    style: Style,
) -> Result<ExitCode> {
    let spec = PathBuf::from(&saved.spec_path);
    if !spec.is_file() {
        return Err(miette!(
            "the saved plan {} was made from the spec {}, which is not there: run apply from the directory plan ran in",
            file.display(),
            spec.display()
        ));
    }
    let ctx = Context::new(&spec, g, conn, true, !flags.no_wait).await?;
    ctx.locked(
        "apply",
        apply_saved_locked(file, &spec, saved, flags, g, style, &ctx),
    )
    .await
}

async fn apply_saved_locked(
    file: &Path,
    spec: &Path,
    saved: PlanFile,
    flags: &RunFlags,
    g: &Global,
    style: Style,
    ctx: &Context,
) -> Result<ExitCode> {
    let spec_bytes = std::fs::read(spec).into_diagnostic()?;
    let (observed, plan) = ctx.observe_and_plan().await?;
    let basis = Basis {
        spec_bytes: &spec_bytes,
        region: &ctx.region,
        graph: ctx.graph.get().expect("apply builds the desired graph"),
        observed: &observed,
    };
    let stale = saved.stale(&basis, &PlanDoc::new(&plan));
    if !stale.is_empty() {
        return Err(miette!(
            "the saved plan {} is out of date, nothing was changed:\n{}\nmake and review a new plan: `prefect-ecs plan --out {} {}`",
            file.display(),
            stale.join("\n"),
            file.display(),
            spec.display()
        ));
    }
    // Reviewed when it was saved: no second question.
    let flags = RunFlags {
        auto_approve: true,
        no_wait: flags.no_wait,
        worker_timeout: flags.worker_timeout,
        json: flags.json,
    };
    let progress = progress(&flags, style, "apply")?;
    ctx.run(plan, &flags, progress, g.parallelism).await
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
}

fn hint_region(g: &Global) -> Option<String> {
    g.region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
}

fn load(path: &Path, g: &Global) -> Result<Spec> {
    let env = |k: &str| std::env::var(k).ok();
    Ok(spec::load(path, &env, hint_region(g).as_deref())?)
}

/// The API key or auth string, from where the spec says; never from the spec itself. `None`
/// for a server without auth.
fn credential(spec: &Spec, path: &Path) -> Result<Option<SecretValue>> {
    let Some(credential) = &spec.prefect.credential else {
        return Ok(None);
    };
    let what = credential.kind.describe();
    let value = match &credential.source {
        ApiKeySource::Env(var) => std::env::var(var).map_err(|_| {
            miette!(
                "secret \"{}\": {var} is not set (the {what}, needed to create and compare the secret)",
                spec.secret.name
            )
        })?,
        ApiKeySource::File(f) => {
            let f = path.parent().unwrap_or(Path::new(".")).join(f);
            std::fs::read_to_string(&f)
                .map_err(|e| {
                    miette!(
                        "secret \"{}\": cannot read the {what} file {}: {e}",
                        spec.secret.name,
                        f.display()
                    )
                })?
                .trim()
                .to_string()
        }
    };
    if value.is_empty() {
        return Err(miette!(
            "secret \"{}\": the {what} is empty",
            spec.secret.name
        ));
    }
    Ok(Some(SecretValue::new(value)))
}

/// The client of the stack's Prefect API, authenticated with the credential's value.
fn prefect_api(
    spec: &Spec,
    value: Option<SecretValue>,
) -> std::result::Result<PrefectApi, crate::apply::ProviderError> {
    let auth = spec.prefect.credential.as_ref().zip(value);
    PrefectApi::new(
        &spec.prefect.api_url,
        auth.map(|(c, v)| (c.kind, v)),
        spec.prefect.cloud.is_some(),
    )
}

struct Context {
    spec: Spec,
    region: String,
    /// Plan and apply compare with the desired stack; destroy, `status`… do not.
    desired: bool,
    credential: Option<SecretValue>,
    /// Built by the first plan, from the spec and the Prefect server's default `ecs` base job
    /// template (read alongside discovery).
    graph: std::sync::OnceLock<StackGraph>,
    pool_template: std::sync::OnceLock<serde_json::Value>,
    aws: Aws,
    /// Ctrl-C, listened for from before the lock is taken to the end of the run.
    interrupt: Arc<Interrupt>,
    lock_lease: Duration,
}

impl Context {
    async fn new(
        path: &Path,
        g: &Global,
        conn: &Connection,
        desired: bool,
        wait: bool,
    ) -> Result<Context> {
        let spec = load(path, g)?;
        let region = match (&spec.region, &g.region) {
            (Some(s), Some(r)) if r != s => {
                return Err(miette!(
                    "the spec's region is {s} but --region says {r}: a stack lives in one region"
                ));
            }
            (Some(s), _) => s.clone(),
            // Only now ask the AWS config chain: a spec with a region needs no lookup at all.
            (None, _) => resolve_region(conn).await.ok_or_else(|| {
                miette!("no AWS region: set [stack] region in the spec, --region, or AWS_REGION")
            })?,
        };
        let credential = credential(&spec, path)?;
        let prefect = prefect_api(&spec, credential.clone())?;
        let settings = Settings {
            stack: spec.name.clone(),
            wait,
            recovery_window_days: spec.secret.recovery_window_days,
            deadline: g.timeout,
            log_group: Some(spec.logs.group.clone()),
            pools: spec
                .workers
                .iter()
                .map(|w| (w.name.clone(), w.work_pool.clone()))
                .collect(),
            redact: credential.clone(),
        };
        let mut aws = Aws::connect(conn, &region, settings).await;
        aws.prefect = Some(prefect);
        Ok(Context {
            spec,
            region,
            desired,
            credential,
            graph: Default::default(),
            pool_template: Default::default(),
            aws,
            interrupt: Default::default(),
            lock_lease: g.lock_lease,
        })
    }

    fn worker_ref(&self, w: &spec::Worker) -> WorkerRef {
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
    async fn locked(
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

    async fn plan(&self) -> Result<Plan> {
        Ok(self.observe_and_plan().await?.1)
    }

    /// The plan and what it was computed from (a saved plan fingerprints it).
    async fn observe_and_plan(&self) -> Result<(ObservedState, Plan)> {
        if !self.desired {
            let observed = self.aws.discover(&self.spec).await?;
            let plan = self.destroy_plan(&observed)?;
            return Ok((observed, plan));
        }
        let prefect = self.aws.prefect.as_ref().expect("connected with Prefect");
        // Independent reads: the template and the live stack in one wave, not two.
        let (template, observed) =
            tokio::join!(prefect.ecs_template(), self.aws.discover(&self.spec));
        let (template, observed) = (template?, observed?);
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
        let plan = plan::compute(&self.spec.name, self.graph.get(), &observed)?;
        Ok((observed, plan))
    }

    /// Everything the stack owns deleted, in the inverse of the order the spec creates it in.
    fn destroy_plan(&self, observed: &ObservedState) -> Result<Plan> {
        // The graph's shape depends on the spec alone: no credential, no template needed.
        let graph = graph::build(&self.spec, &self.region, None, None)?;
        Ok(plan::destroy(&self.spec.name, &graph, observed)?)
    }

    async fn run(
        &self,
        plan: Plan,
        flags: &RunFlags,
        progress: Progress,
        parallelism: u16,
    ) -> Result<ExitCode> {
        let applying = self.desired;
        let redeployed = plan.redeployed_services();
        let code = self.execute(plan, flags, progress, parallelism).await?;
        // Apply is done when the workers are online, not when ECS says "steady state".
        if code == ExitCode::SUCCESS && applying && !flags.no_wait {
            self.wait_online(flags.worker_timeout, &redeployed).await?;
        }
        Ok(code)
    }

    /// Wait for a heartbeat from every worker that should run; at the deadline, say why not.
    /// A worker in `redeployed` (its service got new tasks) needs a heartbeat newer than the
    /// one Prefect shows at the first look: the old task heartbeated under the same name, and
    /// Prefect keeps a worker ONLINE for three intervals after its last heartbeat.
    async fn wait_online(&self, timeout: Duration, redeployed: &BTreeSet<String>) -> Result<()> {
        let Some(prefect) = &self.aws.prefect else {
            return Ok(());
        };
        let mut pending: Vec<&spec::Worker> = self
            .spec
            .workers
            .iter()
            .filter(|w| w.desired_count > 0)
            .collect();
        let start = std::time::Instant::now();
        let mut delay = Duration::from_millis(500);
        // The last heartbeat of each redeployed worker at the first look, which may be the
        // old task's.
        let mut before: Option<BTreeMap<String, Option<String>>> = None;
        loop {
            // One read per pool, every pool at once: the gate's look costs one round trip
            // however many workers the stack has.
            let mut pools: Vec<&str> = pending.iter().map(|w| w.work_pool.as_str()).collect();
            pools.sort_unstable();
            pools.dedup();
            let answers = futures::future::join_all(pools.iter().map(|p| prefect.workers(p))).await;
            // (pool, worker) → last heartbeat, for the workers Prefect calls ONLINE.
            let online: BTreeMap<(&str, &str), Option<&str>> = pools
                .iter()
                .zip(&answers)
                .filter_map(|(pool, a)| Some((*pool, a.as_ref().ok()?.as_ref()?)))
                .flat_map(|(pool, ws)| {
                    ws.iter()
                        .filter(|x| x.status == "ONLINE")
                        .map(move |x| ((pool, x.name.as_str()), x.last_heartbeat.as_deref()))
                })
                .collect();
            let heartbeat = |w: &spec::Worker| {
                online
                    .get(&(w.work_pool.as_str(), w.name.as_str()))
                    .copied()
            };
            // Taken from the first look every pool answered: a failed read is no baseline.
            if before.is_none() && answers.iter().all(Result::is_ok) {
                before = Some(
                    pending
                        .iter()
                        .filter(|w| redeployed.contains(&w.name))
                        .filter_map(|w| Some((w.name.clone(), heartbeat(w)?.map(str::to_owned))))
                        .collect(),
                );
            }
            let mut still = Vec::new();
            for w in pending {
                let fresh = heartbeat(w).is_some_and(|now| match &before {
                    Some(baseline) => baseline
                        .get(&w.name)
                        .is_none_or(|then| then.as_deref() != now),
                    None => !redeployed.contains(&w.name),
                });
                if fresh {
                    eprintln!("worker {} is online in work pool {}", w.name, w.work_pool);
                } else {
                    still.push(w);
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                break;
            }
            let names: Vec<&str> = pending.iter().map(|w| w.name.as_str()).collect();
            tracing::info!(
                target: "prefect_ecs::wait",
                "waiting for {} to send a heartbeat to its work pool ({:.0?} of {})",
                names.join(", "),
                start.elapsed(),
                humantime::format_duration(timeout)
            );
            tokio::time::sleep(delay.min(timeout.saturating_sub(start.elapsed()))).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        let mut facts = futures::future::join_all(
            pending
                .iter()
                .map(|w| async { self.aws.worker_facts(&self.worker_ref(w), 30).await }),
        )
        .await;
        let stale = before.unwrap_or_default();
        for f in &mut facts {
            f.heartbeat_predates_deploy = stale.contains_key(&f.worker);
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
        parallelism: u16,
    ) -> Result<ExitCode> {
        progress.plan(&plan);
        if plan.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if !flags.auto_approve {
            confirm(progress.verb(), &self.spec.name, &self.interrupt).await?;
        }
        if let (Some(prefect), Some(template)) = (&self.aws.prefect, self.pool_template.get()) {
            // A change outside the executor: the same check its steps make first.
            self.aws.ensure_lock().await?;
            prefect.reserve_pools(&plan, template).await?;
        }
        progress.start(schedule(&plan).0.len());
        let report = execute_until(
            &plan,
            &self.aws,
            parallelism.into(),
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

/// What a Ctrl-C has said to the run: set once, then nothing new starts.
#[derive(Default)]
struct Interrupt {
    stop: AtomicBool,
    /// Wakes the confirmation prompt.
    notify: tokio::sync::Notify,
}

/// First Ctrl-C: start nothing new, let what is in flight finish. Second: leave at once.
/// The listener is registered here, before the lock is taken, not when the task first runs.
fn watch_interrupts(
    interrupt: Arc<Interrupt>,
    stack: String,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut interrupts = Interrupts::listen()?;
    Ok(tokio::spawn(async move {
        if !interrupts.next().await {
            return;
        }
        interrupt.stop.store(true, Ordering::SeqCst);
        interrupt.notify.notify_one();
        eprintln!(
            "\ninterrupted: no new operation starts; waiting for the ones in flight (Ctrl-C again to exit at once)"
        );
        if interrupts.next().await {
            eprintln!(
                "interrupted twice: exiting now. The stack's lock stays held until its lease runs out (a run on this host takes it over at once), or: prefect-ecs force-unlock {stack}"
            );
            std::process::exit(130);
        }
    }))
}

struct Interrupts {
    #[cfg(unix)]
    sigint: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn listen() -> Result<Interrupts> {
        Ok(Interrupts {
            #[cfg(unix)]
            sigint: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .into_diagnostic()?,
        })
    }

    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        return self.sigint.recv().await.is_some();
        #[cfg(not(unix))]
        return tokio::signal::ctrl_c().await.is_ok();
    }
}

/// Ask for "yes" on the terminal. A Ctrl-C at the prompt cancels: the run then ends the
/// normal way, giving the lock back. (The line is read on a thread of its own: a blocking
/// read would keep the runtime from ending.)
async fn confirm(verb: &str, stack: &str, interrupt: &Interrupt) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(miette!(
            "{verb} needs confirmation but stdin is not a terminal: pass --auto-approve to {verb} without asking (as in CI)"
        ));
    }
    let cancelled = || miette!("{verb} cancelled by Ctrl-C at the prompt: nothing was changed");
    if interrupt.stop.load(Ordering::SeqCst) {
        return Err(cancelled());
    }
    print!("\nDo you want to {verb} stack \"{stack}\"? Only 'yes' will be accepted: ");
    std::io::stdout().flush().into_diagnostic()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let line = tokio::select! {
        read = rx => read.into_diagnostic()?.into_diagnostic()?,
        () = interrupt.notify.notified() => {
            println!();
            return Err(cancelled());
        }
    };
    if line.trim() != "yes" {
        return Err(miette!("{verb} cancelled"));
    }
    Ok(())
}
