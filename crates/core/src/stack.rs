//! What a command's run on a stack needs from the world beyond the executor's steps:
//! discovery, the stack's lock, the Prefect side (the pools' template, the pools written
//! before any AWS change, the workers' heartbeats) and what explains a worker that is not
//! online. The AWS + Prefect provider implements it; command orchestration is unit-tested
//! against an in-memory one and a fault-injecting wrapper of it.

use std::convert::Infallible;
use std::time::Duration;

use serde_json::Value;

use crate::apply::{Provider, ProviderError};
use crate::diagnose::WorkerFacts;
use crate::model::ObservedState;
use crate::network::NetworkFacts;
use crate::online::WorkerStatus;
use crate::plan::Plan;
use crate::spec::{ExistingNetwork, Spec};

/// A worker's service and where its log and heartbeats are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRef {
    pub cluster: String,
    pub service: String,
    pub pool: String,
    pub log_group: String,
}

#[allow(async_fn_in_trait)]
pub trait Stack: Provider {
    /// Everything of the stack that exists.
    async fn discover(&self, spec: &Spec) -> Result<ObservedState, ProviderError>;
    /// The Prefect server's default base job template of `ecs` pools.
    async fn pool_template(&self) -> Result<Value, ProviderError>;
    /// Take the stack's lock or fail naming who holds it; `Some(note)` when a stale lock was
    /// taken over, saying whose it was.
    async fn acquire_lock(
        &self,
        stack: &str,
        lease: Duration,
        operation: &str,
    ) -> Result<Option<String>, ProviderError>;
    /// Keep the lock renewed while the run goes on; never returns.
    async fn hold_lock(&self, operation: &str) -> Infallible;
    /// Give the lock back.
    async fn release_lock(&self) -> Result<(), ProviderError>;
    /// Write the plan's work pools (a change outside the executor: after the same lock check
    /// its steps make first).
    async fn reserve_pools(&self, plan: &Plan, template: &Value) -> Result<(), ProviderError>;
    /// A pool's workers as Prefect reports them; `None` when the pool does not exist.
    async fn pool_workers(&self, pool: &str) -> Result<Option<Vec<WorkerStatus>>, ProviderError>;
    /// What ECS, the worker's log (its last `lines`) and Prefect say of a worker.
    async fn worker_facts(&self, worker: &WorkerRef, lines: i32) -> WorkerFacts;
    /// An existing VPC, its listed subnets and its route tables, read (never changed).
    async fn network_facts(
        &self,
        existing: &ExistingNetwork,
    ) -> Result<NetworkFacts, ProviderError>;
    /// The ACTIVE task-definition revisions (ARNs) of each `(pool, family)` in `families`
    /// exactly (a family that merely starts alike is another's), by pool.
    async fn flow_run_definitions(
        &self,
        families: &[(String, String)],
    ) -> Result<Vec<(String, String)>, ProviderError>;
}
