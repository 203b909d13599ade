//! The commands: thin glue from flags to spec → graph → discovery → plan → executor.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use miette::{IntoDiagnostic, Result, miette};

use crate::apply::{Event, execute_until};
use crate::cli::{Cli, Command, Global, RunFlags};
use crate::graph::{self, StackGraph};
use crate::plan::{self, Plan};
use crate::provider::{Aws, Connection, Settings, resolve_region};
use crate::secret::SecretValue;
use crate::spec::{self, ApiKeySource, Spec};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let conn = Connection {
        region: cli.global.region.clone(),
        profile: cli.global.profile.clone(),
        endpoint_url: cli.global.endpoint_url.clone(),
    };
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
        Command::Graph { spec } => {
            let s = load(spec, &cli.global)?;
            let region = s
                .region
                .clone()
                .or_else(|| hint_region(&cli.global))
                .unwrap_or_else(|| "(region)".into());
            print!("{}", graph::build(&s, &region, None)?.to_dot());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { spec } => runtime()?.block_on(async {
            let ctx = Context::new(spec, &cli.global, &conn, true, true).await?;
            let plan = ctx.plan().await?;
            print!("{}", plan.render());
            Ok(ExitCode::SUCCESS)
        }),
        Command::Apply { spec, run } => runtime()?.block_on(async {
            let ctx = Context::new(spec, &cli.global, &conn, true, !run.no_wait).await?;
            ctx.locked("apply", async {
                let plan = ctx.plan().await?;
                ctx.run(plan, run, "apply", cli.global.parallelism).await
            })
            .await
        }),
        Command::Destroy { spec, run } => runtime()?.block_on(async {
            let ctx = Context::new(spec, &cli.global, &conn, false, !run.no_wait).await?;
            ctx.locked("destroy", async {
                let observed = ctx.aws.discover(&ctx.spec).await?;
                let plan = plan::compute(&ctx.spec.name, None, &observed)?;
                ctx.run(plan, run, "destroy", cli.global.parallelism).await
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
    }
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
            deadline: Duration::from_secs(20 * 60),
        };
        let aws = Aws::connect(conn, &region, settings).await;
        Ok(Context { spec, graph, aws })
    }

    /// Run `work` holding the stack's lock; the lock is given back however `work` ends.
    async fn locked(
        &self,
        verb: &str,
        work: impl std::future::Future<Output = Result<ExitCode>>,
    ) -> Result<ExitCode> {
        self.aws.acquire_lock(&self.spec.name, verb).await?;
        let result = work.await;
        let released = self.aws.release_lock(&self.spec.name).await;
        let code = result?;
        released.map_err(|e| {
            miette!(
                "{e}; the lock may still be held: prefect-ecs force-unlock {}",
                self.spec.name
            )
        })?;
        Ok(code)
    }

    async fn plan(&self) -> Result<Plan> {
        let observed = self.aws.discover(&self.spec).await?;
        Ok(plan::compute(
            &self.spec.name,
            self.graph.as_ref(),
            &observed,
        )?)
    }

    async fn run(
        &self,
        plan: Plan,
        flags: &RunFlags,
        verb: &str,
        parallelism: u16,
    ) -> Result<ExitCode> {
        print!("{}", plan.render());
        if plan.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if !flags.auto_approve {
            confirm(verb, &self.spec.name)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = tokio::spawn(watch_interrupts(stop.clone(), self.spec.name.clone()));
        let mut out = std::io::stdout();
        let report = execute_until(
            &plan,
            &self.aws,
            parallelism.into(),
            |e| {
                let _ = match e {
                    Event::Started(s) => writeln!(out, "{}: {}…", s.address, s.op.progressive()),
                    Event::Finished(s, took, Ok(())) => writeln!(
                        out,
                        "{}: {} ({:.1}s)",
                        s.address,
                        s.op.past(),
                        took.as_secs_f64()
                    ),
                    Event::Finished(s, took, Err(e)) => {
                        writeln!(
                            out,
                            "{}: {} FAILED after {:.1}s: {e}",
                            s.address,
                            s.op.progressive(),
                            took.as_secs_f64()
                        )
                    }
                };
            },
            &stop,
        )
        .await;
        watcher.abort();
        println!();
        if report.ok() {
            println!(
                "{} complete: {} operation(s) in {:.1}s.",
                capitalize(verb),
                report.done.len(),
                report.elapsed.as_secs_f64()
            );
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "{} {}: {} done, {} failed, {} skipped.",
            capitalize(verb),
            if report.interrupted {
                "interrupted"
            } else {
                "failed"
            },
            report.done.len(),
            report.failed.len(),
            report.skipped.len()
        );
        for (s, e) in &report.failed {
            eprintln!("  failed:  {} ({}): {e}", s.address, s.op.progressive());
        }
        for s in &report.skipped {
            eprintln!("  skipped: {} (needs a failed step)", s.address);
        }
        if report.interrupted {
            eprintln!(
                "Interrupted: {} operation(s) not started:",
                report.not_started.len()
            );
            for s in &report.not_started {
                eprintln!("  not started: {} ({})", s.address, s.op.progressive());
            }
        }
        eprintln!(
            "Run `prefect-ecs {verb}` again once the cause is fixed: it continues from what exists."
        );
        Ok(ExitCode::FAILURE)
    }
}

/// First Ctrl-C: start nothing new, let what is in flight finish. Second: leave at once.
async fn watch_interrupts(stop: Arc<AtomicBool>, stack: String) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    stop.store(true, Ordering::SeqCst);
    eprintln!(
        "\ninterrupted: no new operation starts; waiting for the ones in flight (Ctrl-C again to exit at once)"
    );
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!(
            "interrupted twice: exiting now. The stack lock stays held: prefect-ecs force-unlock {stack}"
        );
        std::process::exit(130);
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
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
