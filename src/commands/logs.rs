//! `logs`: the workers' log lines from CloudWatch Logs, once or following.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use miette::{Result, miette};

use super::{Context, Settings};

pub async fn run(
    settings: &Settings,
    spec: &Path,
    worker: Option<&str>,
    follow: bool,
    since: Duration,
) -> Result<ExitCode> {
    let ctx = Context::new(spec, settings, false, true).await?;
    if let Some(w) = worker
        && !ctx.spec.workers.iter().any(|x| x.name == w)
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
        Some(w) => vec![w],
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
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
