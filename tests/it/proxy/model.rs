//! How long real AWS takes, in one place. Every figure is for us-east-1 as observed in practice
//! or documented by AWS; the proxy plays them back multiplied by a time scale, so a test suite
//! runs the same sequence of states in a fraction of the time.
//!
//! | what                                             | real AWS              | source                     |
//! |--------------------------------------------------|-----------------------|----------------------------|
//! | any API call, round trip                         | ~100 ms (80–120)      | typical from inside AWS    |
//! | NAT gateway `pending` → `available`              | 85–125 s              | observed                   |
//! | NAT gateway `deleting` → `deleted`               | ~60 s (50–70)         | observed                   |
//! | Cloud Map namespace create/delete operation      | 30–45 s               | observed (Route 53 zone)   |
//! | Cloud Map service operations                     | ~2 s (1–3)            | observed                   |
//! | ECS service rollout to steady state (Fargate)    | 90–100 s              | image pull + health checks |
//! | ECS service `DRAINING` → `INACTIVE`              | 1–3 min               | task stop + deregistration |
//! | task ENIs linger after a service is deleted      | 30–90 s               | blocks subnet / SG deletes |
//! | interface endpoint `pending` → `available`       | 60–150 s              | observed (ENIs + DNS)      |
//! | interface endpoint `deleting` → `deleted`        | 30–60 s               | observed; its ENIs linger  |
//! | force-deleted secret name becomes reusable       | 5–10 s                | asynchronous deletion      |
//! | deleted SQS queue name becomes reusable          | 60 s                  | SQS DeleteQueue docs       |
//! | new IAM role usable by ECS (`Role is not valid`) | 0–10 s, rarely more   | IAM eventual consistency   |
//! | NAT gateway `pending` → `failed`                 | after the create time | rare: no IGW, no capacity  |
//!
//! The last two happen only sometimes, so they are not in [`Timings`]: a test that studies one
//! turns it on (`Config::with_role_propagation`, `Config::with_failing_nats`). A failed NAT shows
//! `failureCode`/`failureMessage`, maps no address, and is `deleted` as soon as it is deleted.

use std::time::Duration;

/// A duration drawn uniformly from `min..=max` for each event (each NAT, each deployment...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub min: Duration,
    pub max: Duration,
}

impl Span {
    pub const ZERO: Span = Span::fixed(Duration::ZERO);

    pub const fn fixed(d: Duration) -> Self {
        Span { min: d, max: d }
    }

    const fn secs(min: u64, max: u64) -> Self {
        Span {
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
        }
    }

    /// The duration at `u` in `[0, 1)` of the range.
    pub fn at(self, u: f64) -> Duration {
        self.min + (self.max - self.min).mul_f64(u)
    }

    pub fn scaled(self, factor: f64) -> Self {
        Span {
            min: self.min.mul_f64(factor),
            max: self.max.mul_f64(factor),
        }
    }
}

/// How long each asynchronous AWS change takes; `Span::ZERO` makes a change instant (moto).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub call: Span,
    pub nat_create: Span,
    pub nat_delete: Span,
    pub namespace_operation: Span,
    pub discovery_service_operation: Span,
    pub service_rollout: Span,
    pub service_drain: Span,
    pub eni_linger: Span,
    pub secret_name_release: Span,
    pub queue_name_release: Span,
    pub endpoint_create: Span,
    pub endpoint_delete: Span,
}

/// Real AWS, unscaled: the table at the top of this file.
pub const AWS: Timings = Timings {
    call: Span {
        min: Duration::from_millis(80),
        max: Duration::from_millis(120),
    },
    nat_create: Span::secs(85, 125),
    nat_delete: Span::secs(50, 70),
    namespace_operation: Span::secs(30, 45),
    discovery_service_operation: Span::secs(1, 3),
    service_rollout: Span::secs(90, 100),
    service_drain: Span::secs(60, 180),
    eni_linger: Span::secs(30, 90),
    secret_name_release: Span::secs(5, 10),
    queue_name_release: Span::secs(60, 60),
    endpoint_create: Span::secs(60, 150),
    endpoint_delete: Span::secs(30, 60),
};

/// moto as it is: nothing takes time.
pub const INSTANT: Timings = Timings {
    call: Span::ZERO,
    nat_create: Span::ZERO,
    nat_delete: Span::ZERO,
    namespace_operation: Span::ZERO,
    discovery_service_operation: Span::ZERO,
    service_rollout: Span::ZERO,
    service_drain: Span::ZERO,
    eni_linger: Span::ZERO,
    secret_name_release: Span::ZERO,
    queue_name_release: Span::ZERO,
    endpoint_create: Span::ZERO,
    endpoint_delete: Span::ZERO,
};

impl Timings {
    /// Every duration multiplied by `factor` (0.01: a 100 s rollout takes 1 s).
    pub fn scaled(self, factor: f64) -> Self {
        Timings {
            call: self.call.scaled(factor),
            nat_create: self.nat_create.scaled(factor),
            nat_delete: self.nat_delete.scaled(factor),
            namespace_operation: self.namespace_operation.scaled(factor),
            discovery_service_operation: self.discovery_service_operation.scaled(factor),
            service_rollout: self.service_rollout.scaled(factor),
            service_drain: self.service_drain.scaled(factor),
            eni_linger: self.eni_linger.scaled(factor),
            secret_name_release: self.secret_name_release.scaled(factor),
            queue_name_release: self.queue_name_release.scaled(factor),
            endpoint_create: self.endpoint_create.scaled(factor),
            endpoint_delete: self.endpoint_delete.scaled(factor),
        }
    }
}
