//! The facts behind a diagnosis (`crate::diagnose`) and `status`: an ECS service's state and
//! events, its stopped tasks' reasons, the worker's last log lines, Prefect's view of it.

use aws_sdk_ecs::types::DesiredStatus;

use super::{Aws, aws_err};
use crate::apply::ProviderError;
use crate::diagnose::{ServiceState, StoppedTask, WorkerFacts};

pub use crate::stack::WorkerRef;

/// `12s ago (2026-11-22T08:14:00Z)`; the timestamp alone if it does not parse.
fn heartbeat_age(timestamp: &str) -> String {
    let age =
        humantime::parse_rfc3339_weak(timestamp.trim_end_matches('Z').trim_end_matches("+00:00"))
            .ok()
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok());
    match age {
        Some(age) => format!(
            "{} ago ({timestamp})",
            humantime::format_duration(std::time::Duration::from_secs(age.as_secs()))
        ),
        None => timestamp.to_owned(),
    }
}

/// The log stream prefix of a worker's tasks: `<awslogs-stream-prefix>/<container name>/`.
pub fn worker_stream_prefix(worker: &str) -> String {
    format!("{worker}/worker/")
}

impl Aws {
    /// Everything that tells why a worker is not online. Best effort: a read that fails
    /// leaves its part empty rather than hiding the others.
    pub async fn worker_facts(&self, w: &WorkerRef, lines: i32) -> WorkerFacts {
        let (service, stopped, logs, prefect) = tokio::join!(
            self.service_state(w),
            self.stopped_tasks(w),
            self.last_log_lines(&w.log_group, &w.service, lines),
            self.prefect_view(w),
        );
        let (service, events) = service.unwrap_or_default();
        let (log_stream, log_lines) = logs.unwrap_or_default();
        let PrefectView {
            heartbeat,
            worker_status,
            pool,
            error: prefect_error,
        } = prefect;
        WorkerFacts {
            worker: w.service.clone(),
            pool: w.pool.clone(),
            service,
            events,
            stopped: stopped.unwrap_or_default(),
            log_stream,
            log_lines,
            heartbeat,
            heartbeat_predates_deploy: false,
            pool_type: pool.as_ref().map(|p| p.kind.clone()),
            pool_status: pool.map(|p| if p.paused { "PAUSED".into() } else { p.status }),
            worker_status,
            prefect_error,
        }
    }

    async fn service_state(
        &self,
        w: &WorkerRef,
    ) -> Result<(Option<ServiceState>, Vec<String>), ProviderError> {
        let out = self
            .ecs
            .describe_services()
            .cluster(&w.cluster)
            .services(&w.service)
            // As everywhere: tags asked for, so no concurrent discovery loses them (moto).
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .map_err(|e| aws_err("DescribeServices", e))?;
        let Some(s) = out.services().first() else {
            return Ok((None, Vec::new()));
        };
        let rollout = s
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .and_then(|d| d.rollout_state())
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default();
        let events = s
            .events()
            .iter()
            .take(5)
            .filter_map(|e| e.message().map(str::to_owned))
            .collect();
        Ok((
            Some(ServiceState {
                desired: s.desired_count(),
                running: s.running_count(),
                pending: s.pending_count(),
                rollout,
            }),
            events,
        ))
    }

    /// The service's recently stopped tasks (ECS keeps them about an hour), newest first.
    async fn stopped_tasks(&self, w: &WorkerRef) -> Result<Vec<StoppedTask>, ProviderError> {
        let arns = self
            .ecs
            .list_tasks()
            .cluster(&w.cluster)
            .desired_status(DesiredStatus::Stopped)
            .send()
            .await
            .map_err(|e| aws_err("ListTasks", e))?
            .task_arns()
            .to_vec();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let group = format!("service:{}", w.service);
        let mut tasks: Vec<_> = self
            .ecs
            .describe_tasks()
            .cluster(&w.cluster)
            .set_tasks(Some(arns.into_iter().take(100).collect()))
            .send()
            .await
            .map_err(|e| aws_err("DescribeTasks", e))?
            .tasks()
            .iter()
            .filter(|t| t.group() == Some(group.as_str()))
            .cloned()
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.stopped_at().map(|d| d.secs())));
        Ok(tasks
            .iter()
            .take(3)
            .map(|t| StoppedTask {
                id: t
                    .task_arn()
                    .and_then(|a| a.rsplit('/').next())
                    .unwrap_or_default()
                    .to_owned(),
                stopped_reason: t.stopped_reason().unwrap_or("no reason given").to_owned(),
                containers: t
                    .containers()
                    .iter()
                    .map(|c| {
                        (
                            c.name().unwrap_or_default().to_owned(),
                            c.reason().map(str::to_owned),
                            c.exit_code(),
                        )
                    })
                    .collect(),
            })
            .collect())
    }

    /// The newest worker log stream and its last `lines` lines, oldest first.
    pub async fn last_log_lines(
        &self,
        group: &str,
        worker: &str,
        lines: i32,
    ) -> Result<(Option<String>, Vec<String>), ProviderError> {
        // AWS refuses a limit of 0: no lines asked, no call.
        if lines == 0 {
            return Ok((None, Vec::new()));
        }
        let Some(stream) = self.newest_worker_stream(group, worker).await? else {
            return Ok((None, Vec::new()));
        };
        let out = self
            .logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(&stream)
            .start_from_head(false)
            .limit(lines)
            .send()
            .await
            .map_err(|e| aws_err("GetLogEvents", e))?;
        let lines = out
            .events()
            .iter()
            .filter_map(|e| e.message().map(|m| self.masked(m.trim_end())))
            .collect();
        Ok((Some(stream), lines))
    }

    /// A worker's log line as prefect-ecs may print it: a worker's log can hold its own key.
    fn masked(&self, line: &str) -> String {
        match &self.settings.redact {
            Some(secret) => secret.redact(line),
            None => line.to_owned(),
        }
    }

    pub async fn newest_worker_stream(
        &self,
        group: &str,
        worker: &str,
    ) -> Result<Option<String>, ProviderError> {
        // Streams are named after their task: the newest event across them is the latest task.
        let out = self
            .logs
            .describe_log_streams()
            .log_group_name(group)
            .log_stream_name_prefix(worker_stream_prefix(worker))
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let e = aws_err("DescribeLogStreams", e);
                return if e.is(&["ResourceNotFoundException"]) {
                    Ok(None)
                } else {
                    Err(e.into())
                };
            }
        };
        Ok(out
            .log_streams()
            .iter()
            .max_by_key(|s| {
                (
                    s.last_event_timestamp().or(s.creation_time()),
                    s.log_stream_name().map(str::to_owned),
                )
            })
            .and_then(|s| s.log_stream_name().map(str::to_owned)))
    }

    /// Prefect's word on the worker (`ONLINE, last heartbeat …`) and on the pool, or why
    /// Prefect could not be asked.
    async fn prefect_view(&self, w: &WorkerRef) -> PrefectView {
        let Some(p) = &self.prefect else {
            return PrefectView::default();
        };
        let (workers, pool) = tokio::join!(p.workers(&w.pool), p.pool_status(&w.pool));
        let mut view = PrefectView::default();
        match workers {
            Ok(Some(ws)) => {
                if let Some(x) = ws.iter().find(|x| x.name == w.service) {
                    view.worker_status = Some(x.status.clone());
                    view.heartbeat = Some(format!(
                        "{}, last heartbeat {}",
                        x.status,
                        x.last_heartbeat
                            .as_deref()
                            .map_or("never".into(), heartbeat_age)
                    ));
                }
            }
            Ok(None) => view.heartbeat = Some(format!("work pool {} does not exist", w.pool)),
            Err(e) => view.error = Some(e.to_string()),
        }
        match pool {
            Ok(pool) => view.pool = pool,
            Err(e) => view.error = view.error.or(Some(e.to_string())),
        }
        view
    }

    /// The log events of `workers`' streams since `start_ms`, oldest first: (stream,
    /// timestamp ms, message with the credential masked, event id). The group also holds the
    /// flow runs' streams, which are left out.
    pub async fn worker_log_events(
        &self,
        group: &str,
        workers: &[&str],
        start_ms: i64,
    ) -> Result<Vec<(String, i64, String, String)>, ProviderError> {
        let prefixes: Vec<String> = workers.iter().map(|w| worker_stream_prefix(w)).collect();
        let one = match prefixes.as_slice() {
            [p] => Some(p.clone()),
            _ => None,
        };
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .logs
                .filter_log_events()
                .log_group_name(group)
                .set_log_stream_name_prefix(one.clone())
                .start_time(start_ms)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_err("FilterLogEvents", e))?;
            out.extend(page.events().iter().map(|e| {
                (
                    e.log_stream_name().unwrap_or_default().to_owned(),
                    e.timestamp().unwrap_or_default(),
                    self.masked(e.message().unwrap_or_default().trim_end()),
                    e.event_id().unwrap_or_default().to_owned(),
                )
            }));
            token = page.next_token().map(str::to_owned);
            if token.is_none() || page.events().is_empty() {
                break;
            }
        }
        // Prefixes are (also) applied here: FilterLogEvents takes one, and not every CloudWatch
        // Logs implementation honours it.
        out.retain(|e| prefixes.iter().any(|p| e.0.starts_with(p)));
        out.sort_by_key(|e| e.1);
        Ok(out)
    }

    /// The region's available zones (also proves credentials and region answer).
    pub async fn available_zones(&self) -> Result<Vec<String>, ProviderError> {
        let out = self
            .ec2
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| aws_err("DescribeAvailabilityZones", e))?;
        Ok(out
            .availability_zones()
            .iter()
            .filter(|z| z.state().map(|s| s.as_str()) == Some("available"))
            .filter_map(|z| z.zone_name().map(str::to_owned))
            .collect())
    }

    /// Elastic IPs: the account's limit and how many are allocated.
    /// The account's Elastic IP limit (when reported), the addresses in use by others, and
    /// those this stack holds already (its NATs' own: they count toward what it needs, not
    /// against the quota a second time).
    pub async fn elastic_ips(&self) -> Result<(Option<i64>, usize, usize), ProviderError> {
        let (attrs, addresses) = tokio::join!(
            self.ec2
                .describe_account_attributes()
                .attribute_names(aws_sdk_ec2::types::AccountAttributeName::from(
                    "vpc-max-elastic-ips"
                ))
                .send(),
            self.ec2.describe_addresses().send(),
        );
        let limit = attrs.ok().and_then(|a| {
            a.account_attributes()
                .iter()
                .flat_map(|x| x.attribute_values())
                .filter_map(|v| v.attribute_value()?.parse().ok())
                .next()
        });
        let addresses = addresses.map_err(|e| aws_err("DescribeAddresses", e))?;
        let ours = addresses
            .addresses()
            .iter()
            .filter(|a| {
                self.ec2_address(a.tags(), a.allocation_id().unwrap_or_default())
                    .is_some()
            })
            .count();
        Ok((limit, addresses.addresses().len() - ours, ours))
    }
}

/// What Prefect says of one worker and its pool.
#[derive(Default)]
struct PrefectView {
    heartbeat: Option<String>,
    worker_status: Option<String>,
    pool: Option<super::PoolStatus>,
    error: Option<String>,
}
