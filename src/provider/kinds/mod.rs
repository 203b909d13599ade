//! One module per resource kind: how a kind is found, created, updated and deleted in AWS (or
//! Prefect), behind one trait, [`Resource`], registered in one table, [`registry!`]. The
//! kind's name, attributes and diff behaviour are its core module's (`crates/core/src/kinds/`);
//! this one reads and writes exactly those attributes, through the same constants.
//!
//! The table's dispatch is generated: a kind missing from it is a compile error (the matches
//! over [`Kind`] are exhaustive), never an `unreachable!()` at run time.

use std::collections::BTreeMap;

use crate::apply::ProviderError;
use crate::model::{Address, Attrs, Kind, Observed, Outputs};
use crate::secret::SecretValue;
use crate::spec::Spec;

use super::{Aws, Found};

/// What a create step gives its kind.
pub(super) struct Create<'a> {
    pub address: &'a Address,
    /// Resolved: no references left.
    pub attrs: &'a Attrs,
    /// The ownership and user tags, to be set in the create call itself.
    pub tags: &'a BTreeMap<String, String>,
    pub sensitive: Option<&'a SecretValue>,
}

/// What an update step gives its kind.
pub(super) struct Update<'a> {
    pub attrs: &'a Attrs,
    pub sensitive: Option<&'a SecretValue>,
    pub observed: &'a Observed,
}

/// A resource kind in AWS. Every method is the kind's whole behaviour: nothing elsewhere
/// dispatches on its [`Kind`].
pub(super) trait Resource {
    /// The stack's resources of this kind that exist, each with what it uses by id, and the
    /// same-named ones that are not the stack's (conflicts). A kind read along with another
    /// (an inline policy with its role) returns nothing here and says so.
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError>;
    /// Creates it with its ownership tags in the create call, safely under a lost answer (a
    /// token, or one attempt at a time with a look-up by tags), and returns its outputs.
    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError>;
    /// Brings an existing resource to the attributes wanted (never a replace key).
    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError>;
    /// Deletes it, waiting out AWS's "still in use" answers; "not found" is done.
    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError>;
    /// What a found resource uses among everything found that its own description does not
    /// name (AWS's orderings between kinds): deleted after it.
    fn uses(&self, _o: &Observed, _found: &[Observed]) -> Vec<String> {
        Vec::new()
    }
}

macro_rules! registry {
    ($($kind:ident => $module:ident::$ty:ident),* $(,)?) => {
        $(mod $module;)*

        /// Every kind's discovery at once, then the orderings between kinds.
        pub(super) async fn discover(aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
            let ($($module,)*) = tokio::join!($($module::$ty.discover(aws, spec),)*);
            let mut found = Found::default();
            $(found.merge($module?);)*
            let links: Vec<Vec<String>> = found
                .resources
                .iter()
                .map(|o| match o.address.kind {
                    $(Kind::$kind => $module::$ty.uses(o, &found.resources),)*
                })
                .collect();
            for (o, extra) in found.resources.iter_mut().zip(links) {
                o.uses.extend(extra);
            }
            Ok(found)
        }

        pub(super) async fn create(aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
            match c.address.kind {
                $(Kind::$kind => $module::$ty.create(aws, c).await,)*
            }
        }

        pub(super) async fn update(aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
            match u.observed.address.kind {
                $(Kind::$kind => $module::$ty.update(aws, u).await,)*
            }
        }

        pub(super) async fn delete(aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
            match o.address.kind {
                $(Kind::$kind => $module::$ty.delete(aws, o).await,)*
            }
        }
    };
}

// The registry: every kind and its module. Adding a kind is a line here, its module beside
// this file, its core module (`crates/core/src/kinds/`) and its graph expansion.
registry! {
    Vpc => vpc::Vpc,
    Subnet => subnet::Subnet,
    InternetGateway => internet_gateway::InternetGateway,
    Eip => eip::Eip,
    NatGateway => nat_gateway::NatGateway,
    RouteTable => route_table::RouteTable,
    SecurityGroup => security_group::SecurityGroup,
    VpcEndpoint => vpc_endpoint::VpcEndpoint,
    IamRole => iam_role::IamRole,
    IamRolePolicy => iam_role_policy::IamRolePolicy,
    Secret => secret::Secret,
    Namespace => namespace::Namespace,
    CloudMapService => cloud_map_service::CloudMapService,
    LogGroup => log_group::LogGroup,
    SqsQueue => sqs_queue::SqsQueue,
    EventRule => event_rule::EventRule,
    SqsQueuePolicy => sqs_queue_policy::SqsQueuePolicy,
    EcsCluster => ecs_cluster::EcsCluster,
    TaskDefinition => task_definition::TaskDefinition,
    EcsService => ecs_service::EcsService,
    WorkPool => work_pool::WorkPool,
}
