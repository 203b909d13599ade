//! The validated stack: what the rest of the program consumes. Every value here has been
//! checked; environment variables are substituted; CIDRs are carved; defaults are filled.
//! The Prefect API key is *not* here: it is read by `crate::secret` at the command layer.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Stack name: the value of the `prefect-ecs:stack` ownership tag.
    pub name: String,
    /// Region from the spec, if it names one (`[stack] region`).
    pub region: Option<String>,
    /// User tags put on every resource (besides the ownership tags).
    pub tags: BTreeMap<String, String>,
    pub prefect: Prefect,
    pub network: Network,
    pub secret: Secret,
    pub iam: Iam,
    pub namespace: String,
    pub logs: Logs,
    pub cluster: Cluster,
    pub workers: Vec<Worker>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefect {
    /// `PREFECT_API_URL` given to the workers (built from account + workspace for Prefect Cloud).
    pub api_url: String,
    pub account_id: String,
    pub workspace_id: String,
    /// Where the API key comes from (never the key itself).
    pub api_key_source: ApiKeySource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// An environment variable, `PREFECT_API_KEY` by default.
    Env(String),
    /// A file whose (trimmed) contents are the key; relative paths are resolved against the spec.
    File(std::path::PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatMode {
    None,
    Single,
    PerAz,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub vpc_name: String,
    pub cidr: Ipv4Net,
    pub nat: NatMode,
    /// One entry per availability zone, in spec order.
    pub zones: Vec<Zone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub az: String,
    pub public_cidr: Ipv4Net,
    pub private_cidr: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    /// `None`: force delete on destroy; `Some(7..=30)`: a recovery window.
    pub recovery_window_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iam {
    pub execution_role_name: String,
    pub task_role_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    pub group: String,
    pub retention_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub container_insights: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// Worker name: the ECS service name, the task definition family and `--name`.
    pub name: String,
    pub work_pool: String,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    pub desired_count: u32,
    pub env: BTreeMap<String, String>,
}
