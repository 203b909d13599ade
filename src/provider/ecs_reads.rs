//! Shared reads of ECS services: a wait on a service rollout or drain polls DescribeServices,
//! which takes up to ten services per call. Fifty services waiting at once would make fifty
//! calls per round and fill every `--parallelism` slot with polls; coalesced, they make five.
//!
//! A poll joins the cluster's batch that is forming. The first to come leads it: it waits a
//! moment ([`GATHER`]) without its slot for others to join, takes back its slot, and reads
//! for itself and up to nine others. Should more be waiting, the first of them is told to lead
//! the next batch, with a slot of its own: every call in flight is a slot's, as `--parallelism`
//! promises.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_ecs::types::{Service, ServiceField};
use tokio::sync::oneshot;

use super::{Aws, aws_err};
use crate::apply::ProviderError;

/// How long the leader of a batch waits for others to join: short next to a call's latency
/// and a poll's interval (100 ms at least), long enough to catch the polls of many waits.
const GATHER: Duration = Duration::from_millis(20);

/// DescribeServices' limit of services per call.
const PER_CALL: usize = 10;

type Read = Result<Option<Service>, ProviderError>;

enum Answer {
    Read(Box<Read>),
    /// Lead the next batch.
    Lead,
}

#[derive(Default)]
pub(super) struct ServiceReads {
    clusters: Mutex<HashMap<String, Batch>>,
}

#[derive(Default)]
struct Batch {
    /// A leader is gathering or reading; others join `waiting`.
    led: bool,
    waiting: Vec<(String, oneshot::Sender<Answer>)>,
}

/// Held by a batch's leader: however it ends (its future dropped included), the batch gets a
/// leader or ends, so no poll waits for a leader that is gone.
struct Leading<'a> {
    reads: &'a ServiceReads,
    cluster: &'a str,
    handed_over: bool,
}

impl Leading<'_> {
    /// Up to `n` waiting polls, and the next leader told, or the batch ended.
    fn take(mut self, n: usize) -> Vec<(String, oneshot::Sender<Answer>)> {
        self.handed_over = true;
        let mut clusters = self.reads.clusters.lock().expect("service reads");
        let batch = clusters.entry(self.cluster.to_owned()).or_default();
        let taken: Vec<_> = batch.waiting.drain(..n.min(batch.waiting.len())).collect();
        hand_over(batch);
        taken
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        // A leader dropped while gathering: a leader for whoever waits.
        if self.handed_over {
            return;
        }
        let mut clusters = self.reads.clusters.lock().expect("service reads");
        if let Some(batch) = clusters.get_mut(self.cluster) {
            hand_over(batch);
        }
    }
}

/// The first live waiting poll leads the next batch; none waiting, the batch ends.
fn hand_over(batch: &mut Batch) {
    while !batch.waiting.is_empty() {
        let (_, next) = batch.waiting.remove(0);
        if next.send(Answer::Lead).is_ok() {
            return;
        }
    }
    batch.led = false;
}

impl Aws {
    /// The service `service` (a name or an ARN) of `cluster` as DescribeServices shows it,
    /// `None` when ECS does not know it; read together with other polls of the same cluster.
    pub(super) async fn read_service(&self, cluster: &str, service: &str) -> Read {
        let reads = &self.service_reads;
        let joined = {
            let mut clusters = reads.clusters.lock().expect("service reads");
            let batch = clusters.entry(cluster.to_owned()).or_default();
            if batch.led {
                let (tx, rx) = oneshot::channel();
                batch.waiting.push((service.to_owned(), tx));
                Some(rx)
            } else {
                batch.led = true;
                None
            }
        };
        let leading = match joined {
            Some(rx) => match crate::apply::idle(rx).await {
                Ok(Answer::Read(read)) => return *read,
                Ok(Answer::Lead) => Leading {
                    reads,
                    cluster,
                    handed_over: false,
                },
                Err(_) => return Err(ProviderError("the shared read was abandoned".into())),
            },
            None => {
                let leading = Leading {
                    reads,
                    cluster,
                    handed_over: false,
                };
                crate::apply::idle(tokio::time::sleep(GATHER)).await;
                leading
            }
        };
        let others = leading.take(PER_CALL - 1);
        let names: Vec<String> = std::iter::once(service.to_owned())
            .chain(others.iter().map(|(s, _)| s.clone()))
            .collect();
        let answer = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(names))
            // Every DescribeServices asks for tags: moto applies include/exclude to all
            // concurrent answers, and one without would strip discovery's tags.
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| ProviderError::from(aws_err("DescribeServices", e)));
        let find = |name: &str| -> Read {
            let services = answer.as_ref().map_err(Clone::clone)?.services();
            Ok(services
                .iter()
                .find(|s| s.service_arn() == Some(name) || s.service_name() == Some(name))
                .cloned())
        };
        for (name, tx) in others {
            let _ = tx.send(Answer::Read(Box::new(find(&name))));
        }
        find(service)
    }
}
