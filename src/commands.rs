//! The commands: thin glue from flags to spec → graph → discovery → plan → executor.

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
use crate::provider::{Aws, Connection, Settings, resolve_region};
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
            let g = graph::build(&s, &region, None)?;
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
                let plan = plan::compute(&ctx.spec.name, None, &observed)?;
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
            };
            let aws = Aws::connect(&conn, &region, settings).await;
            match aws.lock_info(stack).await? {
                None => println!("stack \"{stack}\" is not locked."),
                Some(info) => {
                    aws.release_lock(stack).await?;
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
        graph: ctx.graph.as_ref().expect("plan builds the desired graph"),
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
        graph: ctx.graph.as_ref().expect("apply builds the desired graph"),
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

/// The API key, from where the spec says; never from the spec itself.
fn api_key(spec: &Spec, path: &Path) -> Result<SecretValue> {
    let value = match &spec.prefect.api_key_source {
        ApiKeySource::Env(var) => std::env::var(var).map_err(|_| {
            miette!(
                "secret \"{}\": {var} is not set (needed to create and compare the secret)",
                spec.secret.name
            )
        })?,
        ApiKeySource::File(f) => {
            let f = path.parent().unwrap_or(Path::new(".")).join(f);
            std::fs::read_to_string(&f)
                .map_err(|e| {
                    miette!(
                        "secret \"{}\": cannot read the API key file {}: {e}",
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
            "secret \"{}\": the Prefect API key is empty",
            spec.secret.name
        ));
    }
    Ok(SecretValue::new(value))
}

struct Context {
    spec: Spec,
    region: String,
    graph: Option<StackGraph>,
    aws: Aws,
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
        let graph = if desired {
            Some(graph::build(&spec, &region, Some(api_key(&spec, path)?))?)
        } else {
            None
        };
        let settings = Settings {
            stack: spec.name.clone(),
            wait,
            recovery_window_days: spec.secret.recovery_window_days,
            deadline: g.timeout,
        };
        let aws = Aws::connect(conn, &region, settings).await;
        Ok(Context {
            spec,
            region,
            graph,
            aws,
        })
    }

    /// Run `work` holding the stack's lock; the lock is given back however `work` ends.
    async fn locked(
        &self,
        verb: &str,
        work: impl std::future::Future<Output = Result<ExitCode>>,
    ) -> Result<ExitCode> {
        self.aws.acquire_lock(&self.spec.name).await?;
        // Who holds the lock matters only to another run: written while this one works.
        let (recorded, result) =
            tokio::join!(self.aws.record_lock_holder(&self.spec.name, verb), work);
        let released = self.aws.release_lock(&self.spec.name).await;
        let code = result?;
        if let Err(e) = recorded {
            // The lock itself was held: only a second run's message is poorer for it.
            tracing::warn!("could not record this run as the holder of the stack's lock: {e}");
        }
        released.map_err(|e| {
            miette!(
                "{e}; the lock may still be held: prefect-ecs force-unlock {}",
                self.spec.name
            )
        })?;
        Ok(code)
    }

    async fn plan(&self) -> Result<Plan> {
        Ok(self.observe_and_plan().await?.1)
    }

    /// The plan and what it was computed from (a saved plan fingerprints it).
    async fn observe_and_plan(&self) -> Result<(ObservedState, Plan)> {
        let observed = self.aws.discover(&self.spec).await?;
        let plan = plan::compute(&self.spec.name, self.graph.as_ref(), &observed)?;
        Ok((observed, plan))
    }

    async fn run(
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
            confirm(progress.verb(), &self.spec.name)?;
        }
        progress.start(schedule(&plan).0.len());
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = watch_interrupts(stop.clone(), self.spec.name.clone())?;
        let report = execute_until(
            &plan,
            &self.aws,
            parallelism.into(),
            |e| progress.event(&e),
            &stop,
        )
        .await;
        watcher.abort();
        Ok(if progress.finish(&report) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// First Ctrl-C: start nothing new, let what is in flight finish. Second: leave at once.
/// The listener is registered here, before any step starts, not when the task first runs.
fn watch_interrupts(stop: Arc<AtomicBool>, stack: String) -> Result<tokio::task::JoinHandle<()>> {
    let mut interrupts = Interrupts::listen()?;
    Ok(tokio::spawn(async move {
        if !interrupts.next().await {
            return;
        }
        stop.store(true, Ordering::SeqCst);
        eprintln!(
            "\ninterrupted: no new operation starts; waiting for the ones in flight (Ctrl-C again to exit at once)"
        );
        if interrupts.next().await {
            eprintln!(
                "interrupted twice: exiting now. The stack lock stays held: prefect-ecs force-unlock {stack}"
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

fn confirm(verb: &str, stack: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(miette!(
            "{verb} needs confirmation but stdin is not a terminal: pass --auto-approve to {verb} without asking (as in CI)"
        ));
    }
    print!("\nDo you want to {verb} stack \"{stack}\"? Only 'yes' will be accepted: ");
    std::io::stdout().flush().into_diagnostic()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .into_diagnostic()?;
    if line.trim() != "yes" {
        return Err(miette!("{verb} cancelled"));
    }
    Ok(())
}
