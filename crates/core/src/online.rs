//! The online gate: apply is done when every worker that should run has sent its work pool a
//! heartbeat, not when ECS calls the service stable. A pure state machine: the command reads
//! each pool [`Gate::pools`] names, hands the answers to [`Gate::look`], and sleeps
//! [`next_delay`] until [`Gate::done`] or its deadline.
//!
//! A redeployed worker (its service got new tasks) needs a heartbeat newer than the one Prefect
//! showed at the first look: the old task heartbeated under the same name, and Prefect keeps a
//! worker ONLINE for three intervals after its last heartbeat.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One worker as Prefect reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    pub name: String,
    pub status: String,
    pub last_heartbeat: Option<String>,
}

/// A worker the gate waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awaited {
    pub worker: String,
    pub pool: String,
}

/// What one read of a pool's workers said.
#[derive(Debug, Clone, Copy)]
pub enum PoolAnswer<'a> {
    /// The read failed: no news, and no baseline.
    Failed,
    /// The pool does not exist (yet).
    Missing,
    Workers(&'a [WorkerStatus]),
}

#[derive(Debug, Clone)]
pub struct Gate {
    pending: Vec<Awaited>,
    redeployed: BTreeSet<String>,
    /// The last heartbeat of each redeployed worker online at the first look every pool
    /// answered (it may be the old task's). `None` until such a look.
    baseline: Option<BTreeMap<String, Option<String>>>,
}

impl Gate {
    /// Waits for `workers`; those in `redeployed` need a heartbeat newer than the first look's.
    pub fn new(workers: impl IntoIterator<Item = Awaited>, redeployed: &BTreeSet<String>) -> Gate {
        Gate {
            pending: workers.into_iter().collect(),
            redeployed: redeployed.clone(),
            baseline: None,
        }
    }

    /// The pools to read for the next look, each once however many workers it has.
    pub fn pools(&self) -> Vec<String> {
        let pools: BTreeSet<&str> = self.pending.iter().map(|w| w.pool.as_str()).collect();
        pools.into_iter().map(str::to_owned).collect()
    }

    /// Take one look's answers (by pool); the workers that came online with it, in order.
    pub fn look(&mut self, answers: &BTreeMap<String, PoolAnswer<'_>>) -> Vec<Awaited> {
        let heartbeat = |w: &Awaited| -> Option<Option<&str>> {
            match answers.get(&w.pool)? {
                PoolAnswer::Workers(ws) => ws
                    .iter()
                    .find(|x| x.status == "ONLINE" && x.name == w.worker)
                    .map(|x| x.last_heartbeat.as_deref()),
                PoolAnswer::Failed | PoolAnswer::Missing => None,
            }
        };
        let every_pool_answered = self.pools().iter().all(|p| {
            answers
                .get(p)
                .is_some_and(|a| !matches!(a, PoolAnswer::Failed))
        });
        if self.baseline.is_none() && every_pool_answered {
            self.baseline = Some(
                self.pending
                    .iter()
                    .filter(|w| self.redeployed.contains(&w.worker))
                    .filter_map(|w| Some((w.worker.clone(), heartbeat(w)?.map(str::to_owned))))
                    .collect(),
            );
        }
        let fresh = |w: &Awaited| {
            heartbeat(w).is_some_and(|now| match &self.baseline {
                Some(baseline) => baseline
                    .get(&w.worker)
                    .is_none_or(|then| then.as_deref() != now),
                // No baseline yet: a redeployed worker's heartbeat may be the old task's.
                None => !self.redeployed.contains(&w.worker),
            })
        };
        let (online, pending): (Vec<Awaited>, Vec<Awaited>) =
            self.pending.drain(..).partition(|w| fresh(w));
        self.pending = pending;
        online
    }

    pub fn done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The workers still waited for.
    pub fn pending(&self) -> &[Awaited] {
        &self.pending
    }

    /// Whether the heartbeat Prefect shows for `worker` is the one from before the deploy.
    pub fn predates_deploy(&self, worker: &str) -> bool {
        self.baseline
            .as_ref()
            .is_some_and(|b| b.contains_key(worker))
    }
}

/// The wait before the next look: doubling from 500 ms, at most 5 s.
pub fn next_delay(previous: Option<Duration>) -> Duration {
    previous.map_or(Duration::from_millis(500), |d| {
        (d * 2).min(Duration::from_secs(5))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awaited(worker: &str, pool: &str) -> Awaited {
        Awaited {
            worker: worker.into(),
            pool: pool.into(),
        }
    }

    fn seen(name: &str, status: &str, heartbeat: &str) -> WorkerStatus {
        WorkerStatus {
            name: name.into(),
            status: status.into(),
            last_heartbeat: Some(heartbeat.into()),
        }
    }

    fn answers<'a>(list: &[(&str, PoolAnswer<'a>)]) -> BTreeMap<String, PoolAnswer<'a>> {
        list.iter().map(|(p, a)| (p.to_string(), *a)).collect()
    }

    fn names(ws: &[Awaited]) -> Vec<&str> {
        ws.iter().map(|w| w.worker.as_str()).collect()
    }

    #[test]
    fn one_read_per_pool_and_workers_online_by_name() {
        let mut gate = Gate::new(
            [awaited("a", "p"), awaited("b", "p"), awaited("c", "q")],
            &BTreeSet::new(),
        );
        assert_eq!(gate.pools(), ["p", "q"]);
        let p = [seen("a", "ONLINE", "t1"), seen("b", "OFFLINE", "t0")];
        let online = gate.look(&answers(&[
            ("p", PoolAnswer::Workers(&p)),
            ("q", PoolAnswer::Missing),
        ]));
        assert_eq!(names(&online), ["a"]);
        assert_eq!(names(gate.pending()), ["b", "c"]);
        assert!(!gate.done());
        let p = [seen("b", "ONLINE", "t2")];
        let q = [seen("c", "ONLINE", "t2")];
        let online = gate.look(&answers(&[
            ("p", PoolAnswer::Workers(&p)),
            ("q", PoolAnswer::Workers(&q)),
        ]));
        assert_eq!(names(&online), ["b", "c"]);
        assert!(gate.done());
        assert!(gate.pools().is_empty());
    }

    #[test]
    fn a_redeployed_worker_needs_a_heartbeat_newer_than_the_first_look() {
        let redeployed = BTreeSet::from(["a".to_string()]);
        let mut gate = Gate::new([awaited("a", "p"), awaited("b", "p")], &redeployed);
        // The old task's heartbeat: ONLINE, but from before the deploy.
        let old = [seen("a", "ONLINE", "t1"), seen("b", "ONLINE", "t1")];
        let online = gate.look(&answers(&[("p", PoolAnswer::Workers(&old))]));
        assert_eq!(
            names(&online),
            ["b"],
            "b was not redeployed: online at once"
        );
        assert!(gate.predates_deploy("a"));
        let online = gate.look(&answers(&[("p", PoolAnswer::Workers(&old))]));
        assert!(
            online.is_empty(),
            "the same heartbeat again is not the new task's"
        );
        let new = [seen("a", "ONLINE", "t2")];
        let online = gate.look(&answers(&[("p", PoolAnswer::Workers(&new))]));
        assert_eq!(names(&online), ["a"]);
        assert!(gate.done());
    }

    #[test]
    fn a_failed_read_is_no_baseline_and_no_news() {
        let redeployed = BTreeSet::from(["a".to_string()]);
        let mut gate = Gate::new([awaited("a", "p"), awaited("b", "q")], &redeployed);
        let q = [seen("b", "ONLINE", "t1")];
        // p failed: no baseline yet, so a's heartbeat (unseen anyway) cannot count; b's does.
        let online = gate.look(&answers(&[
            ("p", PoolAnswer::Failed),
            ("q", PoolAnswer::Workers(&q)),
        ]));
        assert_eq!(names(&online), ["b"]);
        assert!(!gate.predates_deploy("a"));
        // The first look every pool answers sets the baseline: a's old heartbeat.
        let old = [seen("a", "ONLINE", "t1")];
        assert!(
            gate.look(&answers(&[("p", PoolAnswer::Workers(&old))]))
                .is_empty()
        );
        assert!(gate.predates_deploy("a"));
        let new = [seen("a", "ONLINE", "t3")];
        assert_eq!(
            names(&gate.look(&answers(&[("p", PoolAnswer::Workers(&new))]))),
            ["a"]
        );
    }

    #[test]
    fn a_redeployed_worker_not_online_at_the_first_look_counts_with_its_first_heartbeat() {
        let redeployed = BTreeSet::from(["a".to_string()]);
        let mut gate = Gate::new([awaited("a", "p")], &redeployed);
        assert!(
            gate.look(&answers(&[("p", PoolAnswer::Missing)]))
                .is_empty()
        );
        assert!(!gate.predates_deploy("a"));
        let new = [seen("a", "ONLINE", "t1")];
        assert_eq!(
            names(&gate.look(&answers(&[("p", PoolAnswer::Workers(&new))]))),
            ["a"]
        );
    }

    #[test]
    fn looks_back_off_to_five_seconds() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..6 {
            let next = next_delay(d);
            seen.push(next.as_millis());
            d = Some(next);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 5000, 5000]);
    }
}
