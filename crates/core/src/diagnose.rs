//! Why a worker is not online: the facts the provider gathered (ECS service state, stopped
//! tasks, the worker's last log lines, Prefect's view of it) and the likely cause in words for
//! the failures people hit again and again. Pure: the provider fills [`WorkerFacts`].

use std::fmt::Write;

#[derive(Debug, Clone, Default)]
pub struct WorkerFacts {
    pub worker: String,
    pub pool: String,
    pub service: Option<ServiceState>,
    /// The service's latest events, newest first.
    pub events: Vec<String>,
    pub stopped: Vec<StoppedTask>,
    /// The worker's latest log stream and its last lines, oldest first.
    pub log_stream: Option<String>,
    pub log_lines: Vec<String>,
    /// What Prefect says of the worker: `None` when it never sent a heartbeat.
    pub heartbeat: Option<String>,
    /// Apply replaced the worker's tasks and the last heartbeat Prefect has is from before
    /// that: the old task's, under the same name.
    pub heartbeat_predates_deploy: bool,
    /// The pool's type, when it exists.
    pub pool_type: Option<String>,
    /// The pool's status (`READY`, `NOT_READY`, `PAUSED`), when it exists.
    pub pool_status: Option<String>,
    /// The worker's status in Prefect (`ONLINE`, `OFFLINE`), when it ever sent a heartbeat.
    pub worker_status: Option<String>,
    /// Prefect did not answer (unreachable, refused the credential…): the heartbeat and the
    /// pool are unknown, not missing.
    pub prefect_error: Option<String>,
}

/// What `status` calls healthy: the service at its desired count with its rollout done, the
/// worker ONLINE, its pool READY. Each problem in words; `Err` when Prefect could not be
/// asked, so health is unknown rather than bad.
pub fn problems(f: &WorkerFacts) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    match &f.service {
        None => out.push(format!("worker {}: no ECS service", f.worker)),
        Some(svc) if svc.running < svc.desired => out.push(format!(
            "worker {}: {} of {} tasks running",
            f.worker, svc.running, svc.desired
        )),
        Some(_) => {}
    }
    if let Some(e) = &f.prefect_error {
        return Err(format!("worker {}: Prefect unreachable: {e}", f.worker));
    }
    let wanted = f.service.as_ref().is_none_or(|s| s.desired > 0);
    match f.worker_status.as_deref() {
        Some("ONLINE") => {}
        _ if !wanted => {}
        Some(other) => out.push(format!("worker {}: {other} in Prefect", f.worker)),
        None => out.push(format!(
            "worker {}: no heartbeat in Prefect from a worker of this name",
            f.worker
        )),
    }
    match f.pool_status.as_deref() {
        Some("READY") => {}
        _ if !wanted && f.pool_type.is_some() => {}
        Some(other) => out.push(format!("work pool {}: {other}", f.pool)),
        None => out.push(format!("work pool {}: not found in Prefect", f.pool)),
    }
    Ok(out)
}

#[derive(Debug, Clone, Default)]
pub struct ServiceState {
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub rollout: String,
}

#[derive(Debug, Clone, Default)]
pub struct StoppedTask {
    pub id: String,
    pub stopped_reason: String,
    /// Container name, its reason, its exit code.
    pub containers: Vec<(String, Option<String>, Option<i32>)>,
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} desired, {} running, {} pending; deployment {}",
            self.desired,
            self.running,
            self.pending,
            if self.rollout.is_empty() {
                "(no state)"
            } else {
                &self.rollout
            }
        )
    }
}

/// The known failures, most specific first: what the facts say, in words, with the fix.
pub fn likely_causes(f: &WorkerFacts) -> Vec<String> {
    let mut causes = Vec::new();
    let reasons: Vec<String> = f
        .stopped
        .iter()
        .flat_map(|t| {
            std::iter::once(t.stopped_reason.clone())
                .chain(t.containers.iter().filter_map(|(_, r, _)| r.clone()))
        })
        .collect();
    let any_reason = |needles: &[&str]| {
        reasons.iter().any(|r| {
            let r = r.to_ascii_lowercase();
            needles.iter().all(|n| r.contains(&n.to_ascii_lowercase()))
        })
    };
    let logs = f.log_lines.join("\n").to_ascii_lowercase();
    let in_logs = |n: &str| logs.contains(&n.to_ascii_lowercase());

    if any_reason(&["ResourceInitializationError", "secret"])
        && (any_reason(&["timeout"]) || any_reason(&["dial tcp"]) || any_reason(&["no route"]))
    {
        causes.push(
            "the task could not reach Secrets Manager to read the API key: its subnets have no \
             route to the internet (a private subnet needs a route to a NAT gateway, a public \
             one assignPublicIp = ENABLED) or a VPC endpoint for secretsmanager"
                .into(),
        );
    } else if any_reason(&["ResourceInitializationError", "AccessDenied"]) {
        causes.push(
            "the execution role may not read the secret: it needs secretsmanager:GetSecretValue \
             on the secret's ARN (and kms:Decrypt for a customer-managed key)"
                .into(),
        );
    } else if any_reason(&["ResourceInitializationError", "ResourceNotFound"]) {
        causes.push(
            "the secret the task definition names does not exist (deleted, or scheduled for \
             deletion): run `prefect-ecs apply` to restore it"
                .into(),
        );
    } else if any_reason(&["ResourceInitializationError", "json"]) {
        causes.push(
            "the secret is not plain text: the worker's environment gets the secret's value as \
             is, so it must hold only the key"
                .into(),
        );
    } else if any_reason(&["ResourceInitializationError"]) {
        causes.push(
            "the task failed before its container started (ResourceInitializationError): \
             usually no route to the internet from its subnets, or a secret the execution role \
             cannot read"
                .into(),
        );
    }
    if any_reason(&["CannotPullContainerError"]) {
        causes.push(
            "the image cannot be pulled: check the image name and tag, give the execution role \
             access to a private registry, and make sure the subnets reach the internet"
                .into(),
        );
    }
    // Not a bare "401": log timestamps carry milliseconds (`12:14:00.401`).
    if in_logs("401 unauthorized") || in_logs("status code 401") {
        causes.push(
            "Prefect answered 401 Unauthorized: the API key (or auth string) is wrong or \
             expired, the secret holds more than the bare key, or PREFECT_API_URL names \
             another workspace"
                .into(),
        );
    }
    if in_logs("unknown worker type")
        || in_logs("no module named 'prefect_aws'")
        || in_logs("could not find a package for the worker type")
    {
        causes.push(
            "the image has no prefect-aws, which the `ecs` worker type needs: use an image \
             with prefect-aws, or a plain prefecthq/prefect image (prefect-ecs then sets \
             EXTRA_PIP_PACKAGES=prefect-aws)"
                .into(),
        );
    }
    let mismatch = f.pool_type.as_deref().is_some_and(|t| t != "ecs")
        || in_logs("worker type mismatch")
        || in_logs("does not match the type of the work pool");
    if mismatch {
        causes.push(format!(
            "work pool type mismatch: the pool \"{}\" is of type {}, the worker is an `ecs` worker",
            f.pool,
            f.pool_type.as_deref().unwrap_or("another type")
        ));
    }
    if in_logs("connecterror")
        || in_logs("name or service not known")
        || in_logs("temporary failure in name resolution")
    {
        causes.push(
            "the worker cannot reach the Prefect API: no route to the internet from its \
             subnets, or a wrong PREFECT_API_URL"
                .into(),
        );
    }
    if f.heartbeat_predates_deploy {
        causes.push(
            "the worker's last heartbeat is from the task this apply replaced; the new task \
             has sent none (Prefect shows a worker ONLINE for three heartbeat intervals after \
             its last one): the new task's reasons and log above say why"
                .into(),
        );
    }
    if causes.is_empty() {
        let never_started = f.stopped.is_empty()
            && f.log_lines.is_empty()
            && f.service.as_ref().is_some_and(|s| s.running == 0);
        if never_started {
            causes.push(
                "no task of the service has started or stopped yet: look at the service events \
                 above (capacity, subnets, security group, role trust)"
                    .into(),
            );
        }
    }
    causes
}

/// The diagnosis as printed: facts, then the likely causes.
pub fn render(f: &WorkerFacts) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "worker {} (work pool {}):", f.worker, f.pool);
    match &f.heartbeat {
        Some(h) => {
            let _ = writeln!(s, "  Prefect: {h}");
        }
        None => {
            let _ = writeln!(s, "  Prefect: no heartbeat from a worker of this name");
        }
    }
    if let Some(svc) = &f.service {
        let _ = writeln!(s, "  ECS service: {svc}");
    }
    for e in f.events.iter().take(5) {
        let _ = writeln!(s, "  event: {e}");
    }
    for t in &f.stopped {
        let _ = writeln!(s, "  stopped task {}: {}", t.id, t.stopped_reason);
        for (name, reason, exit) in &t.containers {
            let exit = exit
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "    container {name}: {}{exit}",
                reason.as_deref().unwrap_or("no reason given")
            );
        }
    }
    match &f.log_stream {
        Some(stream) if !f.log_lines.is_empty() => {
            let _ = writeln!(s, "  last {} log lines ({stream}):", f.log_lines.len());
            for l in &f.log_lines {
                let _ = writeln!(s, "    | {l}");
            }
        }
        _ => {
            let _ = writeln!(s, "  no log lines from the worker yet");
        }
    }
    let causes = likely_causes(f);
    if causes.is_empty() {
        let _ = writeln!(
            s,
            "  likely cause: not one of the known failures; read the above"
        );
    }
    for c in causes {
        let _ = writeln!(s, "  likely cause: {c}");
    }
    s
}

/// One worker for `status`: the service, its last events, Prefect's view.
pub fn render_status(f: &WorkerFacts) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "worker {} (work pool {})", f.worker, f.pool);
    match &f.service {
        Some(svc) => {
            let _ = writeln!(s, "  service:   {svc}");
        }
        None => {
            let _ = writeln!(s, "  service:   not found (apply the stack)");
        }
    }
    for e in f.events.iter().take(3) {
        let _ = writeln!(s, "  event:     {e}");
    }
    if let Some(e) = &f.prefect_error {
        let _ = writeln!(s, "  heartbeat: unknown: Prefect unreachable ({e})");
        let _ = writeln!(s, "  pool:      unknown: Prefect unreachable");
        return s;
    }
    let _ = writeln!(
        s,
        "  heartbeat: {}",
        f.heartbeat
            .as_deref()
            .unwrap_or("none from a worker of this name")
    );
    let _ = writeln!(
        s,
        "  pool:      {}",
        match (&f.pool_type, &f.pool_status) {
            (Some(t), Some(st)) => format!("type {t}, {st}"),
            _ => "not found in Prefect".to_owned(),
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(reason: &str) -> WorkerFacts {
        WorkerFacts {
            worker: "w".into(),
            pool: "p".into(),
            stopped: vec![StoppedTask {
                id: "t1".into(),
                stopped_reason: reason.into(),
                containers: vec![],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn known_failures_are_named() {
        let cases = [
            (
                stopped(
                    "ResourceInitializationError: unable to pull secrets or registry auth: \
                     execution resource retrieval failed: unable to retrieve secret from asm: \
                     service call has been retried 5 time(s): RequestError: send request failed \
                     caused by: Post \"https://secretsmanager.us-east-1.amazonaws.com/\": dial \
                     tcp 52.46.1.1:443: i/o timeout",
                ),
                "could not reach Secrets Manager",
            ),
            (
                stopped(
                    "ResourceInitializationError: unable to pull secrets or registry auth: \
                     AccessDeniedException: User: arn:aws:sts::1:assumed-role/x is not \
                     authorized to perform: secretsmanager:GetSecretValue",
                ),
                "may not read the secret",
            ),
            (
                stopped(
                    "CannotPullContainerError: pull image manifest has been retried 5 time(s): \
                     failed to resolve ref docker.io/prefecthq/prefect:nope: not found",
                ),
                "image cannot be pulled",
            ),
        ];
        for (facts, expected) in cases {
            let causes = likely_causes(&facts);
            assert!(
                causes.iter().any(|c| c.contains(expected)),
                "{expected}: {causes:?}"
            );
        }
        let mut f = stopped("Essential container in task exited");
        f.log_lines = vec![
            "prefect.exceptions.PrefectHTTPStatusError: Client error '401 Unauthorized' for url"
                .into(),
        ];
        assert!(likely_causes(&f).iter().any(|c| c.contains("401")));
        let mut f = stopped("Essential container in task exited");
        f.log_lines = vec!["12:14:00.401 | INFO    | prefect.worker - Worker started".into()];
        assert!(
            !likely_causes(&f).iter().any(|c| c.contains("401")),
            "a timestamp's milliseconds are not a 401"
        );
        for (reason, logs, expected) in [
            (
                "ResourceInitializationError: unable to pull secrets or registry auth: \
                 execution resource retrieval failed: unable to retrieve secret from asm: \
                 service call has been retried 1 time(s): ResourceNotFoundException: \
                 Secrets Manager can't find the specified secret.",
                "",
                "does not exist",
            ),
            (
                "ResourceInitializationError: unable to pull secrets or registry auth: \
                 execution resource retrieval failed: unable to retrieve secret from asm: \
                 retrieved secret from Secrets Manager did not contain json key key",
                "",
                "not plain text",
            ),
            (
                "Essential container in task exited",
                "ValueError: Unknown worker type 'ecs'. Could not find a package for the worker type",
                "has no prefect-aws",
            ),
            (
                "Essential container in task exited",
                "httpx.ConnectError: [Errno -3] Temporary failure in name resolution",
                "cannot reach the Prefect API",
            ),
        ] {
            let mut f = stopped(reason);
            f.log_lines = vec![logs.into()];
            let causes = likely_causes(&f);
            assert!(
                causes.iter().any(|c| c.contains(expected)),
                "{expected}: {causes:?}"
            );
        }
        let f = WorkerFacts {
            pool_type: Some("process".into()),
            pool: "p".into(),
            ..Default::default()
        };
        assert!(
            likely_causes(&f)
                .iter()
                .any(|c| c.contains("type mismatch"))
        );
    }

    #[test]
    fn the_rendering_shows_reasons_logs_and_causes() {
        let mut f = stopped("CannotPullContainerError: not found");
        f.log_stream = Some("worker/worker/abc".into());
        f.log_lines = vec!["line one".into(), "line two".into()];
        let text = render(&f);
        assert!(
            text.contains("stopped task t1: CannotPullContainerError"),
            "{text}"
        );
        assert!(
            text.contains("last 2 log lines (worker/worker/abc)"),
            "{text}"
        );
        assert!(text.contains("    | line two"), "{text}");
        assert!(
            text.contains("likely cause: the image cannot be pulled"),
            "{text}"
        );
    }

    #[test]
    fn health_names_each_problem_and_tells_unreachable_from_missing() {
        let healthy = WorkerFacts {
            worker: "w".into(),
            pool: "p".into(),
            service: Some(ServiceState {
                desired: 1,
                running: 1,
                pending: 0,
                rollout: "COMPLETED".into(),
            }),
            worker_status: Some("ONLINE".into()),
            pool_type: Some("ecs".into()),
            pool_status: Some("READY".into()),
            ..Default::default()
        };
        assert_eq!(problems(&healthy), Ok(vec![]));
        let sick = WorkerFacts {
            service: Some(ServiceState {
                desired: 2,
                running: 1,
                ..Default::default()
            }),
            worker_status: Some("OFFLINE".into()),
            pool_status: Some("NOT_READY".into()),
            ..healthy.clone()
        };
        assert_eq!(
            problems(&sick),
            Ok(vec![
                "worker w: 1 of 2 tasks running".to_owned(),
                "worker w: OFFLINE in Prefect".to_owned(),
                "work pool p: NOT_READY".to_owned(),
            ])
        );
        let missing = WorkerFacts {
            pool_type: None,
            pool_status: None,
            worker_status: None,
            ..healthy.clone()
        };
        assert_eq!(
            problems(&missing),
            Ok(vec![
                "worker w: no heartbeat in Prefect from a worker of this name".to_owned(),
                "work pool p: not found in Prefect".to_owned(),
            ])
        );
        // Scaled to zero on purpose: no worker to be online, a pool without one is fine.
        let idle = WorkerFacts {
            service: Some(ServiceState::default()),
            worker_status: None,
            pool_status: Some("NOT_READY".into()),
            ..healthy.clone()
        };
        assert_eq!(problems(&idle), Ok(vec![]));
        let away = WorkerFacts {
            prefect_error: Some("connection refused".into()),
            pool_type: None,
            pool_status: None,
            ..healthy
        };
        let err = problems(&away).unwrap_err();
        assert!(
            err.contains("Prefect unreachable: connection refused"),
            "{err}"
        );
        assert!(render_status(&away).contains("unknown: Prefect unreachable"));
        assert!(!render_status(&away).contains("not found in Prefect"));
    }
}
