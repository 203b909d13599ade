//! The file as written: every field optional so that a missing key is a validation problem
//! reported with the others, not a deserialization error that hides them. The keys and their
//! types are `schema.rs`'s, checked before these structs are filled, so that a type error is
//! reported with the rest too; a unit test checks that the two agree.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type Text = Option<Spanned<String>>;
/// A number written as one or as a string with `${...}` (`schema.rs` lets nothing else by).
pub type Number = Option<Spanned<Lit<i64>>>;
/// A boolean, or a string with `${...}`.
pub type Flag = Option<Spanned<Lit<bool>>>;

/// A literal value or, for numbers and booleans from variables, the text to substitute.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Lit<T> {
    Value(T),
    Text(String),
}

#[derive(Deserialize)]
pub struct RawSpec {
    pub stack: Option<Spanned<RawStack>>,
    pub prefect: Option<Spanned<RawPrefect>>,
    #[serde(default)]
    pub network: RawNetwork,
    #[serde(default)]
    pub secret: RawSecret,
    #[serde(default)]
    pub iam: RawIam,
    #[serde(default)]
    pub service_discovery: RawServiceDiscovery,
    #[serde(default)]
    pub logs: RawLogs,
    #[serde(default)]
    pub cluster: RawCluster,
    #[serde(default)]
    pub cost: RawCost,
    pub worker: Option<Spanned<Vec<Spanned<RawWorker>>>>,
    pub work_pool: Option<Spanned<Vec<Spanned<RawWorkPool>>>>,
}

#[derive(Deserialize)]
pub struct RawStack {
    pub name: Text,
    pub region: Text,
    pub account_id: Text,
    pub protected: Flag,
    #[serde(default)]
    pub tags: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
pub struct RawPrefect {
    pub account_id: Text,
    pub workspace_id: Text,
    pub api_url: Text,
    pub api_key_env: Text,
    pub api_key_file: Text,
    pub auth_string_env: Text,
    pub auth_string_file: Text,
}

#[derive(Deserialize, Default)]
pub struct RawNetwork {
    pub vpc_id: Text,
    pub private_subnet_ids: Option<Spanned<Vec<Spanned<String>>>>,
    pub public_subnet_ids: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub private_subnet_tags: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub public_subnet_tags: BTreeMap<String, Spanned<String>>,
    pub vpc_name: Text,
    pub cidr: Text,
    pub availability_zones: Option<Spanned<Vec<Spanned<String>>>>,
    pub az_count: Number,
    pub nat: Text,
    pub public_subnets: Option<Spanned<Vec<Spanned<String>>>>,
    pub private_subnets: Option<Spanned<Vec<Spanned<String>>>>,
    pub task_subnets: Text,
    #[serde(default)]
    pub endpoints: RawEndpoints,
}

/// `[network.endpoints]`: the S3 gateway endpoint and the interface endpoints (issue 14).
#[derive(Deserialize, Default)]
pub struct RawEndpoints {
    pub s3: Flag,
    pub interface: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize, Default)]
pub struct RawSecret {
    pub arn: Text,
    pub name: Text,
    pub recovery_window_days: Number,
    pub kms_key_id: Text,
}

#[derive(Deserialize, Default)]
pub struct RawIam {
    pub execution_role_name: Text,
    pub task_role_name: Text,
    pub flow_run_role: Flag,
    pub flow_run_role_name: Text,
    pub path: Text,
    pub permissions_boundary: Text,
}

#[derive(Deserialize, Default)]
pub struct RawServiceDiscovery {
    pub namespace: Text,
}

#[derive(Deserialize, Default)]
pub struct RawLogs {
    pub group: Text,
    pub retention_days: Number,
}

/// What the plan's monthly cost assumes of usage (issue 14): unset, an item is listed as
/// depending on usage.
#[derive(Deserialize, Default)]
pub struct RawCost {
    pub nat_gb_per_month: Number,
    pub log_gb_per_month: Number,
    pub endpoint_gb_per_month: Number,
}

#[derive(Deserialize, Default)]
pub struct RawCluster {
    pub arn: Text,
    pub name: Text,
    pub container_insights: Flag,
}

#[derive(Deserialize)]
pub struct RawWorker {
    pub name: Text,
    pub family: Text,
    pub work_pool: Text,
    pub image: Text,
    pub cpu: Number,
    pub memory: Number,
    pub desired_count: Number,
    pub architecture: Text,
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
pub struct RawWorkPool {
    pub name: Text,
    pub adopt: Flag,
}
