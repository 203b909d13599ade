//! What a proxy does to the calls it forwards: latency, pending states, dependency errors and
//! faults, all drawn from one seed so a failing run can be replayed.

use std::collections::HashMap;
use std::time::Duration;

use super::model::{self, Span, Timings};

/// A failure injected instead of moto's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The service's own throttling error (EC2 `RequestLimitExceeded` 503, IAM/STS `Throttling`
    /// 400, JSON services `ThrottlingException` 400).
    Throttle,
    /// HTTP 500 with the service's internal-error body.
    InternalError,
    /// HTTP 503 with the service's unavailable body.
    Unavailable,
    /// The connection is closed before the request reaches moto: no response at all.
    Reset,
    /// moto performs the call, then the connection is closed: AWS acted, and the answer was
    /// lost (what idempotency tokens, and looking before a create is sent again, are for).
    Lost,
    /// moto performs the call, then the answer is held back this long: past the client's attempt
    /// timeout, the client cannot know the call succeeded (what idempotency tokens are for).
    Slow(Duration),
}

#[derive(Debug, Clone)]
pub struct Faults {
    /// Chance that a call fails, per call.
    pub probability: f64,
    /// The fault of a failing call is drawn uniformly from these.
    pub kinds: Vec<Fault>,
    /// Operations that may fail (`CreateVpc`, or `ecs:CreateService` where the name is shared);
    /// empty: every operation.
    pub operations: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Per-call latency and how long each asynchronous change stays pending.
    pub timings: Timings,
    /// Per-operation latency, in place of `timings.call` (same matching as `Faults::operations`).
    pub operation_latency: Vec<(String, Span)>,
    pub faults: Option<Faults>,
    /// Pending states, the refusals AWS makes and moto does not, and the ECS service fields moto
    /// drops. Off, moto's answers go through untouched.
    pub realism: bool,
    /// The first this many NAT gateways created through the proxy end `failed` (code
    /// `Gateway.NotAttached`) instead of `available`, once `timings.nat_create` is over. AWS does
    /// this now and then (no internet gateway yet, no capacity in the zone); 0, the default: never.
    /// Needs `realism`.
    pub failing_nats: u32,
    /// For this long after a role's CreateRole, ECS RegisterTaskDefinition naming the role
    /// (`executionRoleArn`, `taskRoleArn`) is refused with `ClientException` "Role is not valid":
    /// IAM is eventually consistent and ECS may not see a new role yet. Zero, the default: ECS
    /// sees every role at once. Needs `realism`. See `model` for how long AWS takes.
    pub role_propagation: Duration,
}

impl Config {
    /// moto as it is: every call forwarded untouched, only logged.
    pub fn passthrough() -> Self {
        Config {
            seed: 0,
            timings: model::INSTANT,
            operation_latency: Vec::new(),
            faults: None,
            realism: false,
            failing_nats: 0,
            role_propagation: Duration::ZERO,
        }
    }

    /// The AWS latency model played `time_scale` times faster (0.01: a 100 s rollout takes 1 s),
    /// with AWS's dependency errors and no faults.
    pub fn realistic(seed: u64, time_scale: f64) -> Self {
        Config {
            seed,
            timings: model::AWS.scaled(time_scale),
            operation_latency: Vec::new(),
            faults: None,
            realism: true,
            failing_nats: 0,
            role_propagation: Duration::ZERO,
        }
    }

    /// Every call takes `delay` more than moto needs.
    pub fn with_latency(mut self, delay: Duration) -> Self {
        self.timings.call = Span::fixed(delay);
        self
    }

    /// Calls of `operation` take `delay` more than moto needs, whatever the others take.
    pub fn with_operation_latency(mut self, operation: &str, delay: Duration) -> Self {
        self.operation_latency
            .push((operation.to_owned(), Span::fixed(delay)));
        self
    }

    /// The first `count` NAT gateways created fail instead of becoming available.
    pub fn with_failing_nats(mut self, count: u32) -> Self {
        self.failing_nats = count;
        self
    }

    /// ECS refuses a new role in task definitions for `window` after its CreateRole.
    pub fn with_role_propagation(mut self, window: Duration) -> Self {
        self.role_propagation = window;
        self
    }

    /// Each call fails with `probability` with one of `kinds`.
    pub fn with_faults(mut self, probability: f64, kinds: &[Fault]) -> Self {
        assert!(!kinds.is_empty(), "faults need at least one kind");
        self.faults = Some(Faults {
            probability,
            kinds: kinds.to_vec(),
            operations: Vec::new(),
        });
        self
    }

    /// Restricts the faults set by `with_faults` to these operations.
    pub fn faults_only_for(mut self, operations: &[&str]) -> Self {
        let faults = self
            .faults
            .as_mut()
            .expect("faults_only_for after with_faults");
        faults.operations = operations.iter().map(|o| (*o).to_owned()).collect();
        self
    }
}

/// True when `pattern` names this operation: `Op`, or `service:Op`.
pub(super) fn names(pattern: &str, service: &str, operation: &str) -> bool {
    pattern == operation
        || pattern
            .split_once(':')
            .is_some_and(|(s, o)| s == service && o == operation)
}

/// Seeded draws that do not depend on how concurrent calls interleave: the n-th draw for a key
/// (say the 3rd fault draw of `ec2:CreateSubnet`) is the same in every run with the same seed.
#[derive(Debug)]
pub(super) struct Dice {
    seed: u64,
    drawn: HashMap<String, u64>,
}

impl Dice {
    pub(super) fn new(seed: u64) -> Self {
        Dice {
            seed,
            drawn: HashMap::new(),
        }
    }

    /// The next number in `[0, 1)` for `key`.
    pub(super) fn unit(&mut self, key: &str) -> f64 {
        let n = self.drawn.entry(key.to_owned()).or_default();
        *n += 1;
        let bits = splitmix64(self.seed ^ splitmix64(fnv1a(key.as_bytes()) ^ *n));
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn span(&mut self, key: &str, span: Span) -> Duration {
        if span.min == span.max {
            return span.min;
        }
        span.at(self.unit(key))
    }
}

/// A hash of our own rather than std's, whose algorithm may change between Rust releases: a
/// seed printed by a failing CI run must replay the same faults on any machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Spreads hash bits evenly, so that close inputs give unrelated draws.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
