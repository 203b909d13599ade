//! The file as written: every field optional so that a missing key is a validation problem
//! reported with the others, not a deserialization error that hides them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

type Text = Option<Spanned<String>>;
type Number = Option<Spanned<u32>>;

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
    pub worker: Option<Spanned<Vec<Spanned<RawWorker>>>>,
    pub work_pool: Option<Spanned<Vec<Spanned<RawWorkPool>>>>,
}

#[derive(Deserialize)]
pub struct RawStack {
    pub name: Text,
    pub region: Text,
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
    pub vpc_name: Text,
    pub cidr: Text,
    pub availability_zones: Option<Spanned<Vec<Spanned<String>>>>,
    pub az_count: Number,
    pub nat: Text,
    pub public_subnets: Option<Spanned<Vec<Spanned<String>>>>,
    pub private_subnets: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize, Default)]
pub struct RawSecret {
    pub name: Text,
    pub recovery_window_days: Number,
}

#[derive(Deserialize, Default)]
pub struct RawIam {
    pub execution_role_name: Text,
    pub task_role_name: Text,
    pub flow_run_role: Option<bool>,
    pub flow_run_role_name: Text,
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

#[derive(Deserialize, Default)]
pub struct RawCluster {
    pub name: Text,
    pub container_insights: Option<bool>,
}

#[derive(Deserialize)]
pub struct RawWorker {
    pub name: Text,
    pub work_pool: Text,
    pub image: Text,
    pub cpu: Number,
    pub memory: Number,
    pub desired_count: Number,
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
pub struct RawWorkPool {
    pub name: Text,
    pub adopt: Option<bool>,
}

/// The keys each table accepts, for "unknown key" messages. Kept next to the structs above so
/// the two are edited together; a unit test checks that every listed key is accepted.
pub const KEYS: &[(&str, &str)] = &[
    (
        "",
        "stack, prefect, network, secret, iam, service_discovery, logs, cluster, worker, work_pool",
    ),
    ("stack", "name, region, tags"),
    (
        "prefect",
        "account_id, workspace_id, api_url, api_key_env, api_key_file, auth_string_env, auth_string_file",
    ),
    (
        "network",
        "vpc_name, cidr, availability_zones, az_count, nat, public_subnets, private_subnets",
    ),
    ("secret", "name, recovery_window_days"),
    (
        "iam",
        "execution_role_name, task_role_name, flow_run_role, flow_run_role_name",
    ),
    ("service_discovery", "namespace"),
    ("logs", "group, retention_days"),
    ("cluster", "name, container_insights"),
    (
        "worker",
        "name, work_pool, image, cpu, memory, desired_count, env",
    ),
    ("work_pool", "name, adopt"),
];
