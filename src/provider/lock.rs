//! One lock per stack, held in AWS itself: a CloudWatch Logs stream named for the stack in a
//! dedicated log group. `CreateLogStream` is atomic (a second create of the same name fails
//! with `ResourceAlreadyExistsException`), so whoever creates the stream holds the lock; the
//! stream's one event says who, for what and since when. No lock server, no local file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{Aws, aws_err};
use crate::apply::ProviderError;

/// Shared by every stack of the account and region; never deleted by `destroy`.
pub const LOCK_GROUP: &str = "/prefect-ecs/locks";

/// Who holds a lock, as written by the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub holder: String,
    pub operation: String,
    /// How long the lock has been held.
    pub age: Duration,
    /// The holder has written who it is (it does so right after taking the lock).
    pub recorded: bool,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, for {})",
            self.holder,
            self.operation,
            human(self.age)
        )
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// `user@host (pid N)`, plus the CI run when there is one, so a stale lock can be traced.
pub fn this_holder() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    let mut holder = format!("{user}@{host} (pid {})", std::process::id());
    if let (Ok(repo), Ok(run)) = (
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        holder += &format!(", GitHub Actions {repo} run {run}");
    }
    holder
}

impl Aws {
    /// Take the stack's lock, or fail at once naming who holds it. The lock is held from here
    /// on; [`Aws::record_lock_holder`] then says by whom, while the run gets on with its work.
    pub async fn acquire_lock(&self, stack: &str) -> Result<(), ProviderError> {
        for _ in 0..2 {
            match self
                .logs
                .create_log_stream()
                .log_group_name(LOCK_GROUP)
                .log_stream_name(stack)
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let e = aws_err("CreateLogStream", e);
                    if e.is(&["ResourceAlreadyExistsException"]) {
                        let info = self.lock_holder(stack).await?;
                        let who = info
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| "another run".into());
                        return Err(ProviderError(format!(
                            "stack \"{stack}\" is locked by {who}; wait for that run to finish, or if it is dead: prefect-ecs force-unlock {stack}"
                        )));
                    }
                    if !e.is(&["ResourceNotFoundException"]) {
                        return Err(e.into());
                    }
                    self.create_lock_group().await?;
                }
            }
        }
        Err(ProviderError(format!(
            "could not create the lock stream for stack \"{stack}\" in {LOCK_GROUP}"
        )))
    }

    /// Write who holds the stack's lock, for a second run to name (`operation`: apply, destroy).
    /// Until it is written that run says "an unknown run".
    pub async fn record_lock_holder(
        &self,
        stack: &str,
        operation: &str,
    ) -> Result<(), ProviderError> {
        let message =
            json!({"holder": this_holder(), "operation": operation, "started_ms": now_ms()});
        let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(now_ms())
            .message(message.to_string())
            .build()
            .map_err(|e| ProviderError(e.to_string()))?;
        self.logs
            .put_log_events()
            .log_group_name(LOCK_GROUP)
            .log_stream_name(stack)
            .log_events(event)
            .send()
            .await
            .map_err(|e| aws_err("PutLogEvents", e))?;
        Ok(())
    }

    async fn create_lock_group(&self) -> Result<(), ProviderError> {
        let r = self
            .logs
            .create_log_group()
            .log_group_name(LOCK_GROUP)
            .tags("prefect-ecs:purpose", "stack locks")
            .send()
            .await;
        match r.map_err(|e| aws_err("CreateLogGroup", e)) {
            Err(e) if !e.is(&["ResourceAlreadyExistsException"]) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Who holds the lock just found taken. A run writes its name right after it took the
    /// lock, while it starts its work: a lock younger than a few seconds with no name yet is
    /// read again for a moment, so a second run names the first instead of "an unknown run".
    async fn lock_holder(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        let mut info = self.lock_info(stack).await?;
        for _ in 0..12 {
            match &info {
                Some(i) if !i.recorded && i.age < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    info = self.lock_info(stack).await?;
                }
                _ => break,
            }
        }
        Ok(info)
    }

    /// Who holds the stack's lock, if anyone.
    pub async fn lock_info(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        let streams = self
            .logs
            .describe_log_streams()
            .log_group_name(LOCK_GROUP)
            .log_stream_name_prefix(stack)
            .send()
            .await;
        let streams = match streams.map_err(|e| aws_err("DescribeLogStreams", e)) {
            Ok(s) => s,
            Err(e) if e.is(&["ResourceNotFoundException"]) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(stream) = streams
            .log_streams()
            .iter()
            .find(|s| s.log_stream_name() == Some(stack))
        else {
            return Ok(None);
        };
        let created = stream.creation_time().unwrap_or_else(now_ms);
        let events = self
            .logs
            .get_log_events()
            .log_group_name(LOCK_GROUP)
            .log_stream_name(stack)
            .start_from_head(true)
            .limit(1)
            .send()
            .await
            .map_err(|e| aws_err("GetLogEvents", e))?;
        let written: serde_json::Value = events
            .events()
            .first()
            .and_then(|e| e.message())
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default();
        let started = written["started_ms"].as_i64().unwrap_or(created);
        Ok(Some(LockInfo {
            // A holder that died between creating the stream and writing to it left no name.
            holder: written["holder"]
                .as_str()
                .unwrap_or("an unknown run")
                .to_string(),
            operation: written["operation"]
                .as_str()
                .unwrap_or("unknown operation")
                .to_string(),
            age: Duration::from_millis(now_ms().saturating_sub(started).max(0) as u64),
            recorded: written["holder"].is_string(),
        }))
    }

    /// Give the lock back. A lock already gone is not an error.
    pub async fn release_lock(&self, stack: &str) -> Result<(), ProviderError> {
        let r = self
            .logs
            .delete_log_stream()
            .log_group_name(LOCK_GROUP)
            .log_stream_name(stack)
            .send()
            .await;
        match r.map_err(|e| aws_err("DeleteLogStream", e)) {
            Err(e) if !e.is(&["ResourceNotFoundException"]) => Err(e.into()),
            _ => Ok(()),
        }
    }
}
