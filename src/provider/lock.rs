//! One lock per stack, held in AWS itself: a CloudWatch Logs stream named for the stack in a
//! dedicated log group. `CreateLogStream` is atomic (a second create of the same name fails
//! with `ResourceAlreadyExistsException`), so whoever creates the stream holds the lock. No
//! lock server, no local file.
//!
//! The lock is a **lease**. The holder writes a holder event (who, what, a random token, its
//! lease) and renews it with an event every quarter lease while it runs. A lock whose holder
//! has not renewed it for its lease, or whose holder ran on this very host (same host name
//! and boot) in a process that is gone, is stale: the next run says whose it was, takes it
//! over and goes on. Taking over is atomic too: the taker first creates the stream
//! `<stack>/takeover/<token of the stale holder>`, so of two runs that find the same stale
//! lock exactly one takes it. A holder that finds its lease expired (it was paused, or cut
//! off from AWS) checks before its next change whether the lock is still its own, and stops
//! if it is not.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Aws, aws_err};
use crate::apply::ProviderError;

/// Shared by every stack of the account and region; never deleted by `destroy`.
pub const LOCK_GROUP: &str = "/prefect-ecs/locks";

/// How long a holder's renewal keeps the lock its own, unless the holder says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Who holds a lock, as written by the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub holder: String,
    pub operation: String,
    /// How long the lock has been held.
    pub age: Duration,
    /// The holder has written who it is (it does so right after taking the lock).
    pub recorded: bool,
    /// Since the holder last renewed the lock (or took it, or the stream was created).
    pub since_renewal: Duration,
    /// Why the lock is stale, when it is: nobody holds it any more.
    pub stale: Option<String>,
    /// The holder's token (`None` before the holder event is written).
    token: Option<String>,
    created_ms: i64,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, for {}, last renewed {} ago)",
            self.holder,
            self.operation,
            human(self.age),
            human(self.since_renewal)
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

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// This boot of this machine: with the host name it tells that a pid means the same process
/// table (a reboot, or another machine of the same name, does not).
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
}

/// `user@host (pid N)`, plus the CI run when there is one, so a stale lock can be traced.
pub fn this_holder() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let mut holder = format!("{user}@{} (pid {})", host_name(), std::process::id());
    if let (Ok(repo), Ok(run)) = (
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        holder += &format!(", GitHub Actions {repo} run {run}");
    }
    holder
}

/// Whether process `pid` of this machine is gone. Unknown (not unix) counts as alive.
fn process_gone(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only asks whether the process exists; nothing is sent.
        let r = unsafe { libc::kill(pid, 0) };
        r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// A random token for one holding of the lock.
fn new_token() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: time and pid still tell two runs apart.
        return format!("{:x}-{}", now_ms(), std::process::id());
    }
    hex::encode(bytes)
}

/// The lock this run holds.
#[derive(Debug)]
pub(super) struct Held {
    stack: String,
    token: String,
    lease: Duration,
    /// Until when this run may act without asking AWS whether the lock is still its own:
    /// three quarters of a lease after the last renewal was sent (others count a lease from
    /// when AWS received it, which is later).
    valid_until: Instant,
    /// Set once the lock was found taken over: every later change is refused.
    lost: Option<String>,
    /// The holding `token` follows in the chain of holder events (see `read_record`).
    previous: Option<String>,
    /// The holder event for `token` is written and this run found it the current holding.
    announced: bool,
}

/// Between the stack and a holding's token in the name of its takeover marker. Not a
/// character of stack names, so one stack's markers never look like another's lock.
const TAKEOVER: &str = "/takeover/";

/// Who holds a lock this run held and whose stream is gone.
const BROKEN: &str =
    "nobody now: another run took it over and has finished, or it was broken with force-unlock";

/// What the stream's events say, read as a whole.
struct Record {
    holder: Option<Value>,
    token: Option<String>,
    /// AWS's time of the last event that kept the current holder's lease.
    renewed_ms: Option<i64>,
}

fn read_record(events: &[aws_sdk_cloudwatchlogs::types::OutputLogEvent]) -> Record {
    let mut record = Record {
        holder: None,
        token: None,
        renewed_ms: None,
    };
    for e in events {
        let Some(v) = e
            .message()
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
        else {
            continue;
        };
        let at = e.ingestion_time().or(e.timestamp());
        let token = v["token"].as_str().map(str::to_owned);
        if v["holder"].is_string() {
            // Holdings form a chain: the first holder event starts it, and a holder event
            // replaces the current holding only when it names it as the one it follows (a
            // takeover, or a holder claiming its own expired holding). Anything else is a run
            // that lost a race for the lock, and is ignored (it finds so and stops).
            let follows = v["previous"].as_str().map(str::to_owned);
            if record.holder.is_none() || follows == record.token {
                record.token = token;
                record.holder = Some(v);
                record.renewed_ms = at;
            }
        } else if v["renewed_ms"].is_i64() && token.is_some() && token == record.token {
            record.renewed_ms = at.max(record.renewed_ms);
        }
    }
    record
}

impl Aws {
    /// Take the stack's lock, or fail at once naming who holds it; a stale lock (see the
    /// module doc) is taken over, and the returned note says whose it was. The lock is held
    /// from here on; [`Aws::hold_lock`] then says by whom and keeps it renewed.
    pub async fn acquire_lock(
        &self,
        stack: &str,
        lease: Duration,
        operation: &str,
    ) -> Result<Option<String>, ProviderError> {
        // As many tries as the SDK gives any call (throttling and 5xx pass): a run must not
        // fail to start over a burst of them.
        let mut last = None;
        let mut delay = Duration::from_millis(200);
        for _ in 0..10 {
            let created = self
                .logs
                .create_log_stream()
                .log_group_name(LOCK_GROUP)
                .log_stream_name(stack)
                // Sent again after a lost answer it would fail as "exists": once, then look.
                .customize()
                .config_override(once!(aws_sdk_cloudwatchlogs))
                .send()
                .await;
            match created {
                Ok(_) => {
                    self.hold(stack, lease, Instant::now(), None);
                    return Ok(None);
                }
                Err(e) => {
                    let e = aws_err("CreateLogStream", e);
                    if e.transient {
                        // Maybe made, maybe not. A lock nobody has written to yet may be this
                        // run's: hold it, and the first holder event decides (`announce`).
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                        last = Some(e.message.clone());
                        match self.lock_info(stack).await? {
                            None => continue,
                            Some(i) if !i.recorded => {
                                self.hold(stack, lease, Instant::now(), None);
                                return Ok(None);
                            }
                            Some(_) => return self.take_over(stack, lease, operation).await,
                        }
                    }
                    if e.is(&["ResourceAlreadyExistsException"]) {
                        return self.take_over(stack, lease, operation).await;
                    }
                    if !e.is(&["ResourceNotFoundException"]) {
                        return Err(e.into());
                    }
                    self.create_lock_group().await?;
                }
            }
        }
        Err(ProviderError(format!(
            "could not create the lock stream for stack \"{stack}\" in {LOCK_GROUP}{}",
            last.map(|m| format!(" (last: {m})")).unwrap_or_default()
        )))
    }

    fn hold(&self, stack: &str, lease: Duration, since: Instant, previous: Option<String>) {
        *self.held.lock().expect("held lock") = Some(Held {
            stack: stack.to_owned(),
            token: new_token(),
            previous,
            lease,
            valid_until: since + lease * 3 / 4,
            lost: None,
            announced: false,
        });
    }

    /// Read or change this run's holding, if it has one.
    fn held<R>(&self, f: impl FnOnce(&mut Held) -> R) -> Option<R> {
        self.held.lock().expect("held lock").as_mut().map(f)
    }

    fn held_token(&self) -> Option<(String, String, Duration)> {
        self.held(|h| (h.stack.clone(), h.token.clone(), h.lease))
    }

    fn mark_lost(&self, who: String) {
        self.held(|h| {
            h.lost.get_or_insert(who);
        });
    }

    /// The holder event is confirmed, or the lock found lost (or none is held): nothing more
    /// to announce.
    fn settled(&self) -> bool {
        self.held(|h| h.announced || h.lost.is_some())
            .unwrap_or(true)
    }

    /// Has the lease run out? An error when the lock was found lost.
    fn expired(&self) -> Result<bool, ProviderError> {
        self.held(|h| match &h.lost {
            Some(who) => Err(lost(&h.stack, who)),
            None => Ok(Instant::now() >= h.valid_until),
        })
        .unwrap_or(Ok(false))
    }

    /// Who holds the lock now, for the message of a run that lost it.
    async fn holder_now(&self, stack: &str) -> String {
        match self.lock_info(stack).await {
            Ok(Some(i)) => i.to_string(),
            Ok(None) => BROKEN.into(),
            Err(_) => "another run".into(),
        }
    }

    /// The lock is held by another run: fail naming it, or take it over when it is stale.
    async fn take_over(
        &self,
        stack: &str,
        lease: Duration,
        operation: &str,
    ) -> Result<Option<String>, ProviderError> {
        let busy = |who: String| {
            ProviderError(format!(
                "stack \"{stack}\" is locked by {who}; wait for that run to finish, or if it is dead: prefect-ecs force-unlock {stack}"
            ))
        };
        let Some(info) = self.lock_holder(stack).await? else {
            return Err(busy(
                "another run, which has just released it: try again".into(),
            ));
        };
        let Some(why) = info.stale.clone() else {
            return Err(busy(info.to_string()));
        };
        // Of two runs that found this same stale holding, the one that creates its marker
        // takes it. Markers stay until the lock is released, so none stands twice.
        let generation = info
            .token
            .clone()
            .unwrap_or_else(|| format!("unrecorded-{}", info.created_ms));
        if !self.claim(stack, &generation).await? {
            return Err(busy(format!(
                "another run, which is taking over the stale lock of {}",
                info.holder
            )));
        }
        // Still the same stale holding (not renewed, released or taken anew while we looked)?
        match self.lock_info(stack).await? {
            Some(i) if i.token == info.token && i.stale.is_some() => {}
            Some(i) => return Err(busy(i.to_string())),
            None => {
                return Err(busy(
                    "another run, which has just released it: try again".into(),
                ));
            }
        }
        self.hold(stack, lease, Instant::now(), info.token.clone());
        self.announce(operation, Some(&info.holder)).await?;
        if let Some(who) = self.held(|h| h.lost.clone()).flatten() {
            *self.held.lock().expect("held lock") = None;
            return Err(busy(who));
        }
        Ok(Some(format!(
            "took over the lock of stack \"{stack}\" from {info}: {why}"
        )))
    }

    /// Create the takeover marker of one holding: `true` if this run made it.
    async fn claim(&self, stack: &str, generation: &str) -> Result<bool, ProviderError> {
        let made = self
            .logs
            .create_log_stream()
            .log_group_name(LOCK_GROUP)
            .log_stream_name(format!("{stack}{TAKEOVER}{generation}"))
            .send()
            .await;
        match made.map_err(|e| aws_err("CreateLogStream", e)) {
            Ok(_) => Ok(true),
            Err(e) if e.is(&["ResourceAlreadyExistsException"]) => Ok(false),
            // Maybe made: go on as if so; the holder events' chain decides between two
            // runs that both think they made it (`announce`).
            Err(e) if e.transient => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Write this run's holder event (who, what, its token and lease).
    async fn announce(
        &self,
        operation: &str,
        took_over_from: Option<&str>,
    ) -> Result<(), ProviderError> {
        let Some((stack, token, lease)) = self.held_token() else {
            return Ok(());
        };
        let previous = self.held(|h| h.previous.clone()).flatten();
        let holder = json!({
            "holder": this_holder(), "host": host_name(), "boot": boot_id(),
            "pid": std::process::id(), "operation": operation, "started_ms": now_ms(),
            "token": token, "previous": previous, "lease_ms": lease.as_millis() as u64,
            "took_over_from": took_over_from,
        });
        let sent = Instant::now();
        self.put_lock_event(&stack, &holder).await?;
        // Confirmed only when the chain of holder events says so: of two runs that both
        // believed they made or took the lock, the one written first holds it.
        match self.current_token(&stack).await? {
            Some(Some(current)) if current == token => {
                self.held(|h| h.announced = true);
                self.renewed(&token, sent);
            }
            Some(Some(_)) => {
                let who = self.holder_now(&stack).await;
                self.mark_lost(who);
            }
            // Not visible yet: written again at the next try.
            Some(None) => {}
            None => self.mark_lost(BROKEN.into()),
        }
        Ok(())
    }

    /// Announce until the holder event is confirmed or the lock found lost, `tries` at most,
    /// backing off up to a quarter lease.
    async fn announce_until_settled(&self, operation: &str, tries: u32, lease: Duration) {
        let mut delay = Duration::from_millis(100);
        for _ in 0..tries {
            if let Err(e) = self.announce(operation, None).await {
                tracing::warn!("could not record this run as the holder of the stack's lock: {e}");
            }
            if self.settled() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(lease / 4);
        }
    }

    /// Say who holds the lock (this run: `operation` is apply or destroy), then renew it every
    /// quarter lease for as long as the run goes on. Never returns: run it beside the work.
    /// Until the first write a second run says "an unknown run"; a renewal that fails is
    /// tried again at the next one.
    pub async fn hold_lock(&self, operation: &str) -> std::convert::Infallible {
        let Some((_, _, lease)) = self.held_token() else {
            return std::future::pending().await;
        };
        // No change is made before the holder event is written and confirmed
        // (`ensure_lock` waits for it): tried until it is, or the lock is found lost.
        if !self.settled() {
            self.announce_until_settled(operation, u32::MAX, lease)
                .await;
        }
        loop {
            tokio::time::sleep(lease / 4).await;
            if let Err(e) = self.renew(operation).await {
                tracing::warn!("could not renew the stack's lock: {e}");
            }
        }
    }

    /// Renew the lease once. While it is fresh, one event does; once it ran out (the run
    /// was paused, or AWS did not answer) another run may be taking the lock over, so this
    /// run claims its own holding like a taker would, and has lost the lock if it cannot.
    async fn renew(&self, operation: &str) -> Result<(), ProviderError> {
        let Some((stack, token, lease, fresh)) = self
            .held(|h| {
                let fresh = Instant::now() < h.valid_until;
                h.lost
                    .is_none()
                    .then(|| (h.stack.clone(), h.token.clone(), h.lease, fresh))
            })
            .flatten()
        else {
            return Ok(());
        };
        if fresh {
            let sent = Instant::now();
            let event = json!({"renewed_ms": now_ms(), "token": token});
            return match self.put_lock_event(&stack, &event).await {
                Ok(()) => {
                    self.renewed(&token, sent);
                    Ok(())
                }
                Err(e) if e.0.contains("ResourceNotFoundException") => {
                    self.mark_lost(BROKEN.into());
                    Ok(())
                }
                Err(e) => Err(e),
            };
        }
        let still_ours = self.claim(&stack, &token).await?
            && self.current_token(&stack).await? == Some(Some(token.clone()));
        if !still_ours {
            let who = self.holder_now(&stack).await;
            self.mark_lost(who);
            return Ok(());
        }
        // Still ours: hold it on as a new holding that follows the claimed one (spent).
        self.held(|h| {
            h.previous = Some(std::mem::replace(&mut h.token, new_token()));
            h.announced = false;
        });
        self.announce_until_settled(operation, 5, lease).await;
        Ok(())
    }

    fn renewed(&self, token: &str, sent: Instant) {
        self.held(|h| {
            if h.token == token {
                h.valid_until = h.valid_until.max(sent + h.lease * 3 / 4);
            }
        });
    }

    /// Before a change: is the lock still this run's? Free while the lease is fresh; once it
    /// ran out, asks AWS (and renews) first.
    pub async fn ensure_lock(&self) -> Result<(), ProviderError> {
        // The first change waits until this run's holder event is confirmed.
        loop {
            let waiting = self
                .held(|h| !h.announced && h.lost.is_none() && Instant::now() < h.valid_until)
                .unwrap_or(false);
            if !waiting {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !self.expired()? {
            return Ok(());
        }
        // One check at a time: the steps that find the lease expired together wait for it.
        let _one = self.lock_check.lock().await;
        let operation = "apply or destroy (renewed after a pause)";
        if self.expired()? {
            self.renew(operation).await?;
        }
        if self.expired()? {
            let stack = self.held_token().map(|t| t.0).unwrap_or_default();
            return Err(ProviderError(format!(
                "the lock of stack \"{stack}\" could not be renewed: stopping before changing anything more"
            )));
        }
        Ok(())
    }

    async fn put_lock_event(&self, stack: &str, message: &Value) -> Result<(), ProviderError> {
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

    /// Every event of the stack's lock stream: the holder's, a takeover's, and the renewals
    /// (a few a minute). `None` when there is no lock.
    async fn lock_events(
        &self,
        stack: &str,
    ) -> Result<Option<Vec<aws_sdk_cloudwatchlogs::types::OutputLogEvent>>, ProviderError> {
        let mut events = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .logs
                .get_log_events()
                .log_group_name(LOCK_GROUP)
                .log_stream_name(stack)
                .start_from_head(true)
                .set_next_token(next.clone())
                .send()
                .await;
            let page = match page.map_err(|e| aws_err("GetLogEvents", e)) {
                Ok(p) => p,
                Err(e) if e.is(&["ResourceNotFoundException"]) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let got = page.events().len();
            events.extend(page.events().iter().cloned());
            let token = page.next_forward_token().map(str::to_owned);
            // A page is cut at 10,000 events or 1 MB; one of fewer than 1,000 lock events
            // (a few hundred bytes each) was cut by neither: it is the last.
            if got < 1000 || token.is_none() || token == next {
                break;
            }
            next = token;
        }
        Ok(Some(events))
    }

    /// The token of the current holding, read from the events alone (no stream listing):
    /// `None` when there is no lock, `Some(None)` when nobody has written to it yet.
    async fn current_token(&self, stack: &str) -> Result<Option<Option<String>>, ProviderError> {
        Ok(self
            .lock_events(stack)
            .await?
            .map(|events| read_record(&events).token))
    }

    /// Who holds the stack's lock, if anyone, and whether that lock is stale.
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
        let Some(events) = self.lock_events(stack).await? else {
            // Released between the two reads.
            return Ok(None);
        };
        let record = read_record(&events);
        let written = record.holder.clone().unwrap_or_default();
        let now = now_ms();
        let started = written["started_ms"].as_i64().unwrap_or(created);
        let renewed = record.renewed_ms.unwrap_or(created);
        let since_renewal = Duration::from_millis(now.saturating_sub(renewed).max(0) as u64);
        let lease = written["lease_ms"]
            .as_u64()
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_LEASE);
        let here = written["host"].as_str() == Some(host_name().as_str())
            && written["boot"].as_str().is_some()
            && written["boot"].as_str().map(str::to_owned) == boot_id();
        let pid = written["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        let stale = if let Some(pid) = pid.filter(|&p| here && p != std::process::id()) {
            process_gone(pid).then(|| format!("its process (pid {pid} on this host) is gone"))
        } else {
            None
        }
        .or_else(|| {
            (since_renewal > lease).then(|| {
                format!(
                    "it was not renewed for {} (its lease is {})",
                    human(since_renewal),
                    human(lease)
                )
            })
        });
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
            age: Duration::from_millis(now.saturating_sub(started).max(0) as u64),
            recorded: written["holder"].is_string(),
            since_renewal,
            stale,
            token: record.token,
            created_ms: created,
        }))
    }

    /// Give the lock back, if it is still this run's: a lock another run took over is left
    /// to it. A lock already gone is not an error.
    pub async fn release_lock(&self) -> Result<(), ProviderError> {
        let Some((stack, token, lost, fresh, previous)) = self.held(|h| {
            (
                h.stack.clone(),
                h.token.clone(),
                h.lost.is_some(),
                Instant::now() < h.valid_until,
                h.previous.clone(),
            )
        }) else {
            return Ok(());
        };
        // While the lease is fresh nobody can have taken the lock over: no need to look.
        let ours = !lost
            && (fresh || matches!(self.current_token(&stack).await?, Some(Some(t)) if t == token));
        if ours {
            let marker = previous.map(|p| format!("{stack}{TAKEOVER}{p}"));
            let delete = |name: String| async move {
                let r = self
                    .logs
                    .delete_log_stream()
                    .log_group_name(LOCK_GROUP)
                    .log_stream_name(name)
                    .send()
                    .await;
                match r.map_err(|e| aws_err("DeleteLogStream", e)) {
                    Err(e) if !e.is(&["ResourceNotFoundException"]) => Err(e),
                    _ => Ok(()),
                }
            };
            // The lock and the marker of the holding it followed, if any, at once.
            let (lock, _) = tokio::join!(delete(stack.clone()), async {
                if let Some(m) = marker {
                    let _ = delete(m).await;
                }
            });
            lock?;
        }
        *self.held.lock().expect("held lock") = None;
        Ok(())
    }

    /// Delete the stack's lock and its takeover markers, whoever holds it (`force-unlock`,
    /// and a holder's release). Gone already is not an error.
    pub async fn break_lock(&self, stack: &str) -> Result<(), ProviderError> {
        let r = self
            .logs
            .delete_log_stream()
            .log_group_name(LOCK_GROUP)
            .log_stream_name(stack)
            .send()
            .await;
        match r.map_err(|e| aws_err("DeleteLogStream", e)) {
            Err(e) if !e.is(&["ResourceNotFoundException"]) => return Err(e.into()),
            _ => {}
        }
        let markers = self
            .logs
            .describe_log_streams()
            .log_group_name(LOCK_GROUP)
            .log_stream_name_prefix(format!("{stack}{TAKEOVER}"))
            .send()
            .await;
        // A marker left behind only keeps a spent holding from being taken twice.
        if let Ok(markers) = markers {
            for m in markers.log_streams() {
                if let Some(name) = m.log_stream_name() {
                    let _ = self
                        .logs
                        .delete_log_stream()
                        .log_group_name(LOCK_GROUP)
                        .log_stream_name(name)
                        .send()
                        .await;
                }
            }
        }
        Ok(())
    }
}

fn lost(stack: &str, who: &str) -> ProviderError {
    ProviderError(format!(
        "this run lost the lock of stack \"{stack}\" (held by {who}) while it was paused or cut off from AWS: it changes nothing more"
    ))
}

/// On every AWS client: refuses each changing call (not a read, not the lock's own) once the
/// lock is lost or this run's lease ran out before it was renewed, also in the middle of a
/// step (a run paused between two calls of one create), checked as late as the SDK allows:
/// right before the request is sent. [`Aws::ensure_lock`] renews at the
/// start of a step; this only refuses.
#[derive(Debug, Clone)]
pub(super) struct LockGuard(pub(super) std::sync::Arc<std::sync::Mutex<Option<Held>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for LockGuard {
    fn name(&self) -> &'static str {
        "prefect-ecs stack lock"
    }

    fn read_before_transmit(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_smithy_runtime_api::client::orchestrator::Metadata;
        let Some(call) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        if !changes(call.service(), call.name()) {
            return Ok(());
        }
        let held = self.0.lock().expect("held lock");
        let Some(h) = held.as_ref() else {
            return Ok(());
        };
        if let Some(who) = &h.lost {
            return Err(lost(&h.stack, who).0.into());
        }
        if !h.announced {
            return Err(format!(
                "stack \"{}\"'s lock is not confirmed as this run's yet: {} is not sent",
                h.stack,
                call.name()
            )
            .into());
        }
        if Instant::now() >= h.valid_until {
            return Err(format!(
                "the lease of stack \"{}\"'s lock ran out before it was renewed (this run was paused or cut off from AWS): {} is not sent",
                h.stack,
                call.name()
            )
            .into());
        }
        Ok(())
    }
}

/// Whether an AWS operation changes something the lock protects.
fn changes(service: &str, operation: &str) -> bool {
    let read = ["Describe", "List", "Get"]
        .iter()
        .any(|p| operation.starts_with(p));
    let lock = service == "CloudWatch Logs"
        && matches!(
            operation,
            "CreateLogStream" | "PutLogEvents" | "DeleteLogStream"
        );
    !read && !lock
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::types::OutputLogEvent;

    fn event(at: i64, message: Value) -> OutputLogEvent {
        OutputLogEvent::builder()
            .timestamp(at)
            .ingestion_time(at)
            .message(message.to_string())
            .build()
    }

    fn holder(token: &str, previous: Option<&str>) -> Value {
        json!({"holder": format!("run {token}"), "token": token, "previous": previous})
    }

    /// The chain of holder events: the first starts it; only a holder event naming the
    /// current holding as the one it follows replaces it; renewals count for the current
    /// holding only.
    #[test]
    fn the_holder_is_the_chain_of_holdings_not_the_latest_event() {
        let events = [
            event(1_000, holder("a", None)),
            // A run that lost the race to create the lock: ignored.
            event(1_100, holder("racer", None)),
            event(2_000, json!({"renewed_ms": 2_000, "token": "a"})),
            // A late renewal of the racer counts for nobody.
            event(2_500, json!({"renewed_ms": 2_500, "token": "racer"})),
        ];
        let r = read_record(&events);
        assert_eq!(r.token.as_deref(), Some("a"));
        assert_eq!(r.renewed_ms, Some(2_000));

        // A takeover names the holding it follows and becomes the holder; a second taker of
        // the same holding, written later, does not.
        let mut events = events.to_vec();
        events.push(event(70_000, holder("b", Some("a"))));
        events.push(event(70_100, holder("c", Some("a"))));
        // The paused old holder's renewal after the takeover keeps nothing.
        events.push(event(71_000, json!({"renewed_ms": 71_000, "token": "a"})));
        let r = read_record(&events);
        assert_eq!(r.token.as_deref(), Some("b"));
        assert_eq!(r.renewed_ms, Some(70_000));
        assert_eq!(r.holder.unwrap()["holder"], "run b");

        // A holder claiming its own expired holding continues the chain.
        events.push(event(90_000, holder("b2", Some("b"))));
        assert_eq!(read_record(&events).token.as_deref(), Some("b2"));
        assert_eq!(read_record(&[]).token, None);
    }

    #[test]
    fn changing_calls_are_told_from_reads_and_the_locks_own() {
        assert!(changes("EC2", "CreateVpc"));
        assert!(changes("ECS", "UpdateService"));
        assert!(changes("IAM", "PutRolePolicy"));
        assert!(!changes("EC2", "DescribeVpcs"));
        assert!(!changes("ECS", "ListServices"));
        assert!(!changes("Secrets Manager", "GetSecretValue"));
        assert!(!changes("CloudWatch Logs", "PutLogEvents"));
        assert!(!changes("CloudWatch Logs", "CreateLogStream"));
        assert!(changes("CloudWatch Logs", "CreateLogGroup"));
    }
}
