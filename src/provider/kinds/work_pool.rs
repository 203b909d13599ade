//! A Prefect work pool, through the Prefect API (`prefect.rs`, the REST client, which knows the
//! pool's wire shape and its ownership marker). Not an AWS call: it takes no `--parallelism`
//! slot ([`crate::kinds::KindDef::aws`]).

use super::super::{Aws, Found};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::model::{Observed, Outputs};
use crate::spec::Spec;

pub(super) struct WorkPool;

impl Resource for WorkPool {
    /// The spec's pools; none when the command has no Prefect API (it touches only AWS).
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
        match &aws.prefect {
            Some(p) => p.discover(spec).await,
            None => Ok(Found::default()),
        }
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        aws.prefect()?.create_pool(c.attrs).await
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        aws.prefect()?.update_pool(u.attrs).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        aws.prefect()?.delete_pool(o).await
    }
}
