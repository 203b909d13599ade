//! The validated stack: what the rest of the program consumes. Every value here has been
//! checked; environment variables are substituted; CIDRs are carved; defaults are filled.
//! The Prefect API key is *not* here: it is read by `crate::secret` at the command layer.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Stack name: the value of the `prefect-ecs:stack` ownership tag.
    pub name: String,
    /// The environment of the file this is (`[env.<name>]`, `--env`), if it has them.
    pub env: Option<String>,
    /// The AWS account the stack must be applied in (`[stack] account_id`): checked against
    /// the caller's before any other call.
    pub account_id: Option<String>,
    /// `destroy` needs `--confirm <env or stack>` (`[stack] protected`).
    pub protected: bool,
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
    /// What the monthly cost in a plan assumes of usage.
    pub cost: CostAssumptions,
    pub workers: Vec<Worker>,
    /// Every work pool the workers name, sorted by name, each once.
    pub work_pools: Vec<WorkPool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefect {
    /// `PREFECT_API_URL` given to the workers, and the API prefect-ecs manages the work pools
    /// through (built from account + workspace for Prefect Cloud). No trailing slash.
    pub api_url: String,
    /// Set for Prefect Cloud (given, or read from a Cloud `api_url`).
    pub cloud: Option<CloudWorkspace>,
    /// How the workers (and prefect-ecs) authenticate; `None` for a server without auth.
    pub credential: Option<Credential>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudWorkspace {
    pub account_id: String,
    pub workspace_id: String,
}

/// What the secret holds, and where prefect-ecs reads it from (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub kind: CredentialKind,
    pub source: ApiKeySource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A Prefect API key, sent as `Authorization: Bearer` (Prefect Cloud).
    ApiKey,
    /// `user:password` for a self-hosted server's basic auth (`PREFECT_API_AUTH_STRING`).
    AuthString,
}

impl CredentialKind {
    /// The worker's environment variable that receives the secret.
    pub fn env_var(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "PREFECT_API_KEY",
            CredentialKind::AuthString => "PREFECT_API_AUTH_STRING",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "Prefect API key",
            CredentialKind::AuthString => "Prefect API auth string",
        }
    }
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
    /// Where the workers' and flow runs' tasks run: private subnets (behind the NAT, or with
    /// endpoints only) or public subnets, each task with a public IP.
    pub task_subnets: Tier,
    /// One entry per availability zone, in spec order (none in an existing VPC).
    pub zones: Vec<Zone>,
    pub endpoints: Endpoints,
    /// `vpc_id`: a VPC and subnets that exist already, read only: prefect-ecs never tags,
    /// changes or deletes them, and creates no subnet, gateway or route table.
    pub existing: Option<ExistingNetwork>,
}

/// An existing VPC and the subnets of it the tasks run in (`task_subnets` says which tier
/// they are: `private_subnet_ids` or `public_subnet_ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingNetwork {
    pub vpc_id: String,
    /// As listed, or (with `subnet_tags`) as found by their tags before planning.
    pub subnet_ids: Vec<String>,
    /// `private_subnet_tags` / `public_subnet_tags`: the VPC's subnets carrying every one of
    /// these tags (empty when the ids are listed).
    pub subnet_tags: BTreeMap<String, String>,
}

impl Network {
    /// The NAT gateways prefect-ecs makes: none, one, or one per zone.
    pub fn nat_count(&self) -> usize {
        match self.nat {
            NatMode::None => 0,
            NatMode::Single => 1,
            NatMode::PerAz => self.zones.len(),
        }
    }

    /// The private route tables: one per NAT gateway, or one without a default route.
    pub fn private_tables(&self) -> usize {
        self.nat_count().max(1)
    }

    /// The private route table zone `zone`'s private subnet is associated with.
    pub fn private_table_of(&self, zone: usize) -> usize {
        zone % self.private_tables()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Public,
    Private,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Public => "public",
            Tier::Private => "private",
        }
    }
}

/// The services an interface endpoint may be made for (`com.amazonaws.<region>.<service>`):
/// those a Prefect worker stack's tasks call, and a few their flows commonly do.
pub const INTERFACE_ENDPOINTS: &[&str] = &[
    "athena",
    "ec2",
    "ecr.api",
    "ecr.dkr",
    "ecs",
    "ecs-agent",
    "ecs-telemetry",
    "elasticfilesystem",
    "events",
    "glue",
    "kms",
    "logs",
    "monitoring",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "sts",
];

/// `[network.endpoints]`: VPC endpoints, reached from the task subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// An S3 gateway endpoint on the task subnets' route tables (free; on by default).
    pub s3: bool,
    /// Interface endpoints by service (`ecr.api`, `logs`, …): sorted, each once.
    pub interface: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub az: String,
    pub public_cidr: Ipv4Net,
    pub private_cidr: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// An existing secret's ARN (`[secret] arn`), read only: its value is never read nor
    /// written by prefect-ecs, and the tasks get it from there.
    pub arn: Option<String>,
    pub name: String,
    /// `None`: force delete on destroy; `Some(7..=30)`: a recovery window.
    pub recovery_window_days: Option<u32>,
    /// A customer managed KMS key's ARN the secret is encrypted with; the execution role may
    /// decrypt with it through Secrets Manager only.
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iam {
    pub execution_role_name: String,
    pub task_role_name: String,
    /// The role the flow-run tasks the workers launch run as (`None`: they get no task role).
    pub flow_run_role_name: Option<String>,
    /// The path of every role prefect-ecs creates (`/` by default).
    pub path: String,
    /// A managed policy ARN set as every role's permissions boundary.
    pub permissions_boundary: Option<String>,
}

/// `[cost]`: GB a month the plan's cost assumes; `None` leaves the item to usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CostAssumptions {
    /// Data the NAT gateways process, in all.
    pub nat_gb_per_month: Option<u32>,
    /// Log data the workers and flow runs send to CloudWatch Logs.
    pub log_gb_per_month: Option<u32>,
    /// Data the interface endpoints process, in all.
    pub endpoint_gb_per_month: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    pub group: String,
    pub retention_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// An existing cluster's ARN (`[cluster] arn`), read only: the workers' services run in
    /// it, and nothing else of it is changed.
    pub arn: Option<String>,
    pub name: String,
    pub container_insights: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// Worker name: the ECS service name and `--name`.
    pub name: String,
    /// The task definition family: the worker's name, or in an environment
    /// `<stack>-<worker>` (families are the account's, shared by every stack in the region).
    pub family: String,
    pub work_pool: String,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    pub desired_count: u32,
    pub env: BTreeMap<String, String>,
    /// The worker's tasks and its pool's flow runs: x86 (default) or ARM (Graviton).
    pub architecture: Arch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    #[default]
    X86_64,
    Arm64,
}

impl Arch {
    /// As the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// As ECS writes it (`runtimePlatform.cpuArchitecture`).
    pub fn ecs(self) -> &'static str {
        match self {
            Arch::X86_64 => "X86_64",
            Arch::Arm64 => "ARM64",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkPool {
    pub name: String,
    /// Manage a pool that exists already (made by hand or by another tool) instead of refusing
    /// it; destroy then leaves it in Prefect.
    pub adopt: bool,
    /// The flow runs' architecture: the one of the pool's workers.
    pub architecture: Arch,
}
