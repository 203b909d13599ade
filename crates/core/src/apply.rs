//! The executor: runs a plan's changes as a graph of steps, each as soon as what it needs is
//! done (no level barriers), at most `parallelism` AWS steps calling AWS at once (a step that
//! only waits, in [`idle`], gives its slot back meanwhile). A failed step fails only the steps
//! that need it; everything independent goes on. No AWS here: it drives a [`Provider`].

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::model::{Address, Attrs, Observed, Outputs, resolve};
use crate::plan::{Action, Plan};
use crate::secret::SecretValue;

#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error("{0}")]
pub struct ProviderError(pub String);

/// What the executor needs from a cloud. Implementations wait for what they start
/// (a NAT gateway `available`, a Cloud Map operation `SUCCESS`) before returning.
#[allow(async_fn_in_trait)]
pub trait Provider {
    async fn create(
        &self,
        address: &Address,
        attrs: &Attrs,
        sensitive: Option<&SecretValue>,
    ) -> Result<Outputs, ProviderError>;
    async fn update(
        &self,
        address: &Address,
        attrs: &Attrs,
        sensitive: Option<&SecretValue>,
        observed: &Observed,
    ) -> Result<Outputs, ProviderError>;
    async fn delete(&self, observed: &Observed) -> Result<(), ProviderError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn progressive(self) -> &'static str {
        match self {
            Op::Create => "creating",
            Op::Update => "updating",
            Op::Delete => "destroying",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Op::Create => "created",
            Op::Update => "updated",
            Op::Delete => "destroyed",
        }
    }
}

/// One unit of work: one API-level operation on one resource.
#[derive(Debug, Clone)]
pub struct Step {
    /// Position in the schedule.
    pub index: usize,
    pub change: usize,
    pub op: Op,
    pub address: Address,
}

#[derive(Debug)]
pub enum Event<'a> {
    Started(&'a Step),
    /// A running step says what it waits for (`NAT gateway nat-… available: pending (35s)`).
    Waiting(&'a Address, &'a str),
    Finished(&'a Step, Duration, Result<(), &'a ProviderError>),
    /// The run was stopped: `in_flight` operations finish, nothing new starts, and the steps
    /// that only wait give up at once ([`pause`]).
    Stopping {
        in_flight: usize,
    },
}

#[derive(Debug, Default)]
pub struct Report {
    pub done: Vec<(Step, Duration)>,
    pub failed: Vec<(Step, ProviderError)>,
    pub skipped: Vec<Step>,
    /// Steps never started because the run was interrupted.
    pub not_started: Vec<Step>,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.interrupted
    }
}

/// The step a provider call runs for: so that what it waits on reaches the progress output,
/// and so that it can give its `--parallelism` slot back while it only waits.
struct StepScope {
    address: Address,
    waits: tokio::sync::mpsc::UnboundedSender<(Address, String)>,
    /// `None` for a step that takes no slot (`Kind::is_aws`).
    slot: Option<Arc<Slot>>,
    /// Raised when the run is stopped: waits end at once ([`pause`]).
    abandon: Arc<Abandon>,
}

/// The run was stopped: what only waits gives up, what calls AWS finishes.
#[derive(Default)]
struct Abandon {
    raised: AtomicBool,
    notify: tokio::sync::Notify,
}

/// A wait given up because the run was stopped (a Ctrl-C): a wait is no operation in flight,
/// and the next run picks up where it left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned;

/// An AWS step's share of `--parallelism`: the permit it holds while it calls AWS.
struct Slot {
    semaphore: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

tokio::task_local! {
    static STEP: StepScope;
}

/// Report what the running step waits for. `false` outside a step (nothing listens).
pub fn report_wait(message: &str) -> bool {
    STEP.try_with(|s| {
        s.waits
            .send((s.address.clone(), message.to_string()))
            .is_ok()
    })
    .unwrap_or(false)
}

/// Wait for `f` (a sleep between polls of a pending state, a backoff before a retry) without
/// holding the running step's `--parallelism` slot: `parallelism` bounds AWS calls in flight,
/// not resources waiting for AWS. The slot is taken back before `f`'s output is returned, so
/// the step's next call is bounded again. Outside a step, or in one that takes no slot, it
/// just awaits `f`. Steps waiting to take their slot back go before steps not yet started.
pub async fn idle<F: Future>(f: F) -> F::Output {
    let Some(slot) = STEP.try_with(|s| s.slot.clone()).ok().flatten() else {
        return f.await;
    };
    let given_back = slot.permit.lock().expect("slot lock").take();
    let held = given_back.is_some();
    drop(given_back);
    let out = f.await;
    if held {
        let permit = Arc::clone(&slot.semaphore)
            .acquire_owned()
            .await
            .expect("the executor never closes its semaphore");
        *slot.permit.lock().expect("slot lock") = Some(permit);
    }
    out
}

/// Sleep `d` between polls of a pending state without the step's slot (as [`idle`]), or
/// less: `Err(Abandoned)` as soon as the run is stopped. Outside a step, just a sleep.
pub async fn pause(d: Duration) -> Result<(), Abandoned> {
    let Ok(abandon) = STEP.try_with(|s| Arc::clone(&s.abandon)) else {
        tokio::time::sleep(d).await;
        return Ok(());
    };
    idle(async {
        let stopped = abandon.notify.notified();
        tokio::pin!(stopped);
        // Registered before the flag is read: a stop between the two still wakes it.
        stopped.as_mut().enable();
        if abandon.raised.load(Ordering::SeqCst) {
            return Err(Abandoned);
        }
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            () = stopped => Err(Abandoned),
        }
    })
    .await
}

/// The steps of a plan and, for each, the steps it must wait for.
pub fn schedule(plan: &Plan) -> (Vec<Step>, Vec<Vec<usize>>) {
    let mut steps = Vec::new();
    // change index → its create/update step and its delete step
    let mut build: BTreeMap<usize, usize> = BTreeMap::new();
    let mut destroy: BTreeMap<usize, usize> = BTreeMap::new();
    let push = |steps: &mut Vec<Step>, change: usize, op: Op, address: &Address| {
        steps.push(Step {
            index: steps.len(),
            change,
            op,
            address: address.clone(),
        });
        steps.len() - 1
    };
    for (i, c) in plan.changes.iter().enumerate() {
        match c.action {
            Action::NoOp => {}
            Action::Create => {
                build.insert(i, push(&mut steps, i, Op::Create, &c.address));
            }
            Action::Update => {
                build.insert(i, push(&mut steps, i, Op::Update, &c.address));
            }
            Action::Replace => {
                build.insert(i, push(&mut steps, i, Op::Create, &c.address));
                destroy.insert(i, push(&mut steps, i, Op::Delete, &c.address));
            }
            Action::Delete => {
                destroy.insert(i, push(&mut steps, i, Op::Delete, &c.address));
            }
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    let by_address: BTreeMap<&Address, usize> = plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.desired.is_some())
        .map(|(i, c)| (&c.address, i))
        .collect();
    // Builds wait for the builds of what they refer to.
    for (&i, &step) in &build {
        let desired = plan.changes[i]
            .desired
            .as_ref()
            .expect("a build has a desired resource");
        for dep in desired.deps() {
            if let Some(d) = by_address.get(&dep).and_then(|j| build.get(j)) {
                deps[step].push(*d);
            }
        }
    }
    // A deletion waits until nothing uses the resource any more: its users are deleted or
    // updated away from it first. That is the exact inverse of the creation order.
    for (&i, &step) in &destroy {
        let o = plan.changes[i]
            .observed
            .as_ref()
            .expect("a deletion has an observed resource");
        for (j, c) in plan.changes.iter().enumerate() {
            let Some(user) = c.observed.as_ref() else {
                continue;
            };
            if j == i || !user.refers_to(o) {
                continue;
            }
            if let Some(d) = destroy
                .get(&j)
                .or_else(|| build.get(&j).filter(|_| c.action == Action::Update))
            {
                deps[step].push(*d);
            }
        }
        // What the spec's graph says uses this resource, where it is being deleted too: also
        // the orderings no id shows (a service after the routes its tasks need).
        let address = &plan.changes[i].address;
        for (j, c) in plan.changes.iter().enumerate() {
            let uses_it = plan
                .after
                .get(&c.address)
                .is_some_and(|deps| deps.contains(address));
            if j != i
                && c.action == Action::Delete
                && plan.changes[i].action == Action::Delete
                && uses_it
                && let Some(d) = destroy.get(&j)
            {
                deps[step].push(*d);
            }
        }
        if plan.changes[i].action == Action::Replace {
            let b = build[&i];
            if plan.changes[i].address.kind.def().create_before_destroy {
                deps[step].push(b);
            } else {
                // Names are unique in AWS: the old resource must go before the new one comes.
                deps[b].push(step);
            }
        }
    }
    for d in &mut deps {
        d.sort();
        d.dedup();
    }
    (steps, deps)
}

/// Run the plan. `on_event` sees every start and finish, for progress output.
pub async fn execute<P: Provider>(
    plan: &Plan,
    provider: &P,
    parallelism: usize,
    on_event: impl FnMut(Event<'_>),
) -> Report {
    execute_until(
        plan,
        provider,
        parallelism,
        on_event,
        &AtomicBool::new(false),
    )
    .await
}

/// Run the plan until `stop` is set: from then on no new step starts, the ones in flight
/// finish (an AWS call cut in half leaves less to reason about than one let through), and the
/// report lists what never started. Needs a runtime with timers (it looks at `stop` at least
/// every 50 ms, and ends the steps' waits as soon as it is set).
pub async fn execute_until<P: Provider>(
    plan: &Plan,
    provider: &P,
    parallelism: usize,
    mut on_event: impl FnMut(Event<'_>),
    stop: &AtomicBool,
) -> Report {
    let started = Instant::now();
    let (steps, deps) = schedule(plan);
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (s, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(s);
        }
    }
    let mut outputs: BTreeMap<Address, Outputs> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Replace && c.action != Action::Create)
        .filter_map(|c| Some((c.address.clone(), c.observed.as_ref()?.outputs.clone())))
        .collect();
    let mut ready: Vec<usize> = (0..steps.len())
        .filter(|&s| waiting[s] == 0)
        .rev()
        .collect();
    let mut blocked = vec![false; steps.len()];
    let mut report = Report::default();
    let mut running = FuturesUnordered::new();
    // Only AWS steps take a slot (`Kind::is_aws`), and only while they call AWS (`idle`).
    let slots = Arc::new(Semaphore::new(parallelism.max(1)));
    // A slot the executor waited for, for the next AWS step.
    let mut spare: Option<OwnedSemaphorePermit> = None;
    let (waits_tx, mut waits) = tokio::sync::mpsc::unbounded_channel();
    let abandon = Arc::new(Abandon::default());
    // Steps running that take no slot (a work pool's): in flight whenever they run.
    let mut slotless_running = 0usize;
    loop {
        if stop.load(Ordering::SeqCst) && !abandon.raised.swap(true, Ordering::SeqCst) {
            // The calls in flight finish; the waits end now.
            abandon.notify.notify_waiters();
            let calling =
                parallelism.max(1) - slots.available_permits() - usize::from(spare.is_some());
            on_event(Event::Stopping {
                in_flight: calling + slotless_running,
            });
        }
        while !stop.load(Ordering::SeqCst) {
            // The next ready step in order, passing over AWS steps while no slot is free. A
            // slot is only taken for a ready AWS step: held idle, it would keep a step that
            // waits to take its own back from calling AWS.
            if spare.is_none() && ready.iter().any(|&s| steps[s].address.kind.is_aws()) {
                spare = Arc::clone(&slots).try_acquire_owned().ok();
            }
            let Some(at) = ready
                .iter()
                .rposition(|&s| spare.is_some() || !steps[s].address.kind.is_aws())
            else {
                break;
            };
            let s = ready.remove(at);
            let step = &steps[s];
            let slot = step.address.kind.is_aws().then(|| {
                Arc::new(Slot {
                    semaphore: Arc::clone(&slots),
                    permit: Mutex::new(spare.take()),
                })
            });
            on_event(Event::Started(step));
            let change = &plan.changes[step.change];
            let lookup = |a: &Address, out: &str| outputs.get(a).and_then(|o| o.get(out)).cloned();
            let attrs: Option<Attrs> = change.desired.as_ref().map(|d| {
                d.attrs
                    .iter()
                    .map(|(k, v)| {
                        // An update sends what AWS has for an attribute the resource ignores.
                        let kept = (step.op == Op::Update && d.ignore_changes.contains(k))
                            .then(|| change.observed.as_ref()?.attrs.get(k).cloned())
                            .flatten();
                        (k.clone(), kept.unwrap_or_else(|| resolve(v, &lookup)))
                    })
                    .collect()
            });
            let sensitive = change.desired.as_ref().and_then(|d| d.sensitive.as_ref());
            slotless_running += usize::from(slot.is_none());
            let context = StepScope {
                address: step.address.clone(),
                waits: waits_tx.clone(),
                slot,
                abandon: Arc::clone(&abandon),
            };
            running.push(STEP.scope(context, async move {
                let t = Instant::now();
                let result = match step.op {
                    Op::Create => provider
                        .create(&step.address, attrs.as_ref().expect("desired"), sensitive)
                        .await
                        .map(Some),
                    Op::Update => provider
                        .update(
                            &step.address,
                            attrs.as_ref().expect("desired"),
                            sensitive,
                            change.observed.as_ref().expect("observed"),
                        )
                        .await
                        .map(Some),
                    Op::Delete => provider
                        .delete(change.observed.as_ref().expect("observed"))
                        .await
                        .map(|()| None),
                };
                (s, t.elapsed(), result)
            }));
        }
        if stop.load(Ordering::SeqCst) {
            // Nothing starts any more: the slot goes back to the steps still running.
            spare = None;
        }
        // An AWS step ready and no slot: a step that goes idle or finishes frees one.
        let want_slot = spare.is_none()
            && !stop.load(Ordering::SeqCst)
            && ready.iter().any(|&s| steps[s].address.kind.is_aws());
        let next = tokio::select! {
            biased;
            Some((address, message)) = waits.recv() => {
                on_event(Event::Waiting(&address, &message));
                continue;
            }
            next = running.next() => next,
            Ok(permit) = Arc::clone(&slots).acquire_owned(), if want_slot => {
                spare = Some(permit);
                continue;
            }
            // A stop raised from outside (a signal) is seen within this tick.
            () = tokio::time::sleep(Duration::from_millis(50)), if !abandon.raised.load(Ordering::SeqCst) => {
                continue;
            }
        };
        let Some((s, took, result)) = next else {
            break;
        };
        let step = &steps[s];
        slotless_running -= usize::from(!step.address.kind.is_aws());
        match result {
            Ok(out) => {
                on_event(Event::Finished(step, took, Ok(())));
                if let Some(out) = out {
                    outputs.insert(step.address.clone(), out);
                }
                report.done.push((step.clone(), took));
                for &d in &dependents[s] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 && !blocked[d] {
                        ready.insert(0, d);
                    }
                }
            }
            Err(e) => {
                on_event(Event::Finished(step, took, Err(&e)));
                report.failed.push((step.clone(), e));
                let mut stack = dependents[s].clone();
                while let Some(d) = stack.pop() {
                    if !blocked[d] {
                        blocked[d] = true;
                        report.skipped.push(steps[d].clone());
                        stack.extend(dependents[d].iter().copied());
                    }
                }
            }
        }
    }
    if stop.load(Ordering::SeqCst) {
        report.interrupted = true;
        let finished: HashSet<usize> = report
            .done
            .iter()
            .map(|(s, _)| s.index)
            .chain(report.failed.iter().map(|(s, _)| s.index))
            .collect();
        report.not_started = steps
            .iter()
            .filter(|s| !finished.contains(&s.index) && !blocked[s.index])
            .cloned()
            .collect();
    }
    report.elapsed = started.elapsed();
    report
}
