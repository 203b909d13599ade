//! Command-line flags (clap). Parsing only: resolution and work happen in `commands`.
//! Each command takes the flags that act on it and no other: the AWS connection where it
//! talks to AWS, the run's tuning where it changes AWS (issue 15, item 12).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "prefect-ecs",
    version,
    about = "Plan, apply and destroy a Prefect worker stack on AWS ECS Fargate"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// No colour, even on a terminal (also: the NO_COLOR environment variable).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// Where AWS is, for the commands that talk to it.
#[derive(Debug, Args, Default)]
pub struct AwsFlags {
    /// AWS region (default: the spec's, then AWS_REGION / the AWS config).
    #[arg(long)]
    pub region: Option<String>,
    /// AWS shared-config profile (default: AWS_PROFILE).
    #[arg(long)]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint, e.g. a local emulator (default: AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

/// Which environment of the spec file, and values for its `${…}`: for every command that
/// reads a spec.
#[derive(Debug, Args, Default, Clone)]
pub struct SpecFlags {
    /// The spec file's environment (an `[env.NAME]` table): required when the file has
    /// environments, refused when it has none.
    #[arg(long, env = "PREFECT_ECS_ENV", value_name = "NAME")]
    pub env: Option<String>,
    /// A value for `${KEY}` in the spec, over an environment variable of the same name;
    /// repeatable.
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// A TOML file of `KEY = "value"` lines for `${KEY}`; a --var of the same KEY wins.
    #[arg(long, value_name = "FILE")]
    pub var_file: Option<PathBuf>,
}

/// One `--var`. Parsed here rather than by clap, whose error would echo the argument: a value
/// given by mistake (an API key) must not reach a log.
pub fn parse_var(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| "a --var is KEY=VALUE, and one of them has no =".to_owned())?;
    let name_ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !name_ok {
        return Err(format!(
            "{key:?} cannot be referenced as ${{{key}}}: use letters, digits and underscores"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// How a run that changes AWS paces itself: for `apply` and `destroy`.
#[derive(Debug, Args)]
pub struct Tuning {
    /// At most this many AWS calls in flight at once (a step that only waits holds none).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub parallelism: u16,
    /// How long one resource may wait on AWS (a NAT gateway to come up, a dependency to let
    /// go) before its step fails naming what it waited for: `20m`, `90s`.
    #[arg(long, env = "PREFECT_ECS_TIMEOUT", default_value = "20m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// How long the stack's lock stays this run's without a renewal (it renews every quarter
    /// of it): a run killed or cut off longer than this leaves a stale lock the next run takes
    /// over. A run on this host whose process is gone leaves a stale lock at once.
    #[arg(long, env = "PREFECT_ECS_LOCK_LEASE", default_value = "60s", value_parser = parse_lease)]
    pub lock_lease: std::time::Duration,
}

fn parse_lease(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(1) {
        return Err("a lease under 1s would expire between two renewals".into());
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the spec and report every problem at once. Makes no AWS call.
    Validate {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        /// The region to name availability zones in when the spec names none (default:
        /// AWS_REGION).
        #[arg(long)]
        region: Option<String>,
    },
    /// Show what apply would change, resource by resource, and why.
    Plan {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        #[command(flatten)]
        aws: AwsFlags,
        #[command(flatten)]
        show: ShowFlags,
        /// Also save the plan to this file, for `apply FILE` (which refuses if anything it
        /// was computed from has changed since).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Let `--out` overwrite a file that is not a saved plan.
        #[arg(long, requires = "out")]
        force: bool,
        #[command(flatten)]
        select: SelectFlags,
        /// Plan as `adopt` would: the resources built outside prefect-ecs that are the spec's
        /// own taken for the stack's (read only: nothing is tagged).
        #[arg(long, conflicts_with = "out")]
        adopt: bool,
    },
    /// Make AWS match the spec, or apply a plan saved with `plan --out` exactly, without asking.
    Apply {
        /// The spec, or a plan file saved by `plan --out`.
        #[arg(value_name = "SPEC|PLAN")]
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        #[command(flatten)]
        aws: AwsFlags,
        #[command(flatten)]
        run: ApplyFlags,
        #[command(flatten)]
        select: SelectFlags,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Take over a stack built outside prefect-ecs (by hand, by another tool): what is
    /// unambiguously the spec's own (by name; EC2 by the VPC's Name tag and CIDR and what is
    /// in it) becomes the stack's, then apply converges it. Nothing matching is replaced.
    Adopt {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        #[command(flatten)]
        aws: AwsFlags,
        #[command(flatten)]
        run: ApplyFlags,
        #[command(flatten)]
        tuning: Tuning,
        /// Let the plan replace (or delete) a hand-built resource that cannot be brought in
        /// line in place; without it such a plan stops the adoption, naming each.
        #[arg(long)]
        allow_replace: bool,
    },
    /// Delete every resource this stack owns, and nothing else.
    Destroy {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        #[command(flatten)]
        aws: AwsFlags,
        #[command(flatten)]
        run: DestroyFlags,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Print the resource graph (Graphviz DOT or JSON). Makes no AWS call.
    Graph {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// The region to name availability zones in when the spec names none (default:
        /// AWS_REGION).
        #[arg(long)]
        region: Option<String>,
    },
    /// Print the spec as one environment sees it: overlay merged, `${…}` substituted, every
    /// default and derived name filled in, validated; values of worker variables named like
    /// credentials masked. Makes no AWS call.
    Render {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        /// The region to name availability zones in when the spec names none (default:
        /// AWS_REGION).
        #[arg(long)]
        region: Option<String>,
    },
    /// Render a plan saved by `plan --out`. Makes no AWS call.
    Show {
        /// A plan file saved by `plan --out`.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        #[command(flatten)]
        show: ShowFlags,
    },
    /// Print the stack's identifiers (VPC, subnets, cluster, services, roles…), read live.
    Output {
        /// `[NAME] SPEC`: only the output NAME (`vpc_id`, `services.<worker>.service_arn`…), as
        /// `terraform output NAME`; then the stack spec (TOML).
        #[arg(value_name = "[NAME] SPEC", num_args = 1..=2, required = true)]
        args: Vec<String>,
        #[command(flatten)]
        inputs: SpecFlags,
        #[command(flatten)]
        aws: AwsFlags,
        /// One JSON object instead of aligned text.
        #[arg(long, conflicts_with = "raw")]
        json: bool,
        /// The value alone, unquoted, for a script (`$(prefect-ecs output --raw vpc_id SPEC)`);
        /// a string, number or boolean only.
        #[arg(long)]
        raw: bool,
    },
    /// Read-only preflight (also for CI, before plan): AWS answers, zones, Elastic IP
    /// headroom, Prefect reachable with the credential, pool type, image, worker permissions.
    Verify {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        #[command(flatten)]
        aws: AwsFlags,
    },
    /// Per worker: the ECS service's counts and deployment, its last events, the worker's
    /// heartbeat and its pool's status.
    Status {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        #[command(flatten)]
        aws: AwsFlags,
        /// Exit 0 when every worker is healthy (service at its desired count, ONLINE in
        /// Prefect, pool READY), 2 when one is not, 1 on error or when Prefect cannot be asked.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// The workers' CloudWatch logs.
    Logs {
        /// The stack spec (TOML).
        spec: PathBuf,
        #[command(flatten)]
        inputs: SpecFlags,
        #[command(flatten)]
        aws: AwsFlags,
        /// Only this worker's logs.
        #[arg(long)]
        worker: Option<String>,
        /// Keep printing new lines as they arrive (Ctrl-C to stop).
        #[arg(long, short)]
        follow: bool,
        /// How far back to start, e.g. 10m, 2h.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
    },
    /// Break a stack's lock left by a run that died (check that it is dead first).
    ForceUnlock {
        /// The stack name (`[stack] name` of its spec).
        stack: String,
        #[command(flatten)]
        aws: AwsFlags,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script: `prefect-ecs completions bash > /etc/bash_completion.d/prefect-ecs`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// For people: one block per change (colour on a terminal).
    Human,
    /// The versioned JSON document described in the README.
    Json,
    /// A table and collapsed details, for a pull-request comment.
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Json,
}

#[derive(Debug, Args)]
pub struct ShowFlags {
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Exit 0 when there are no changes, 2 when there are (1 stays "error").
    #[arg(long)]
    pub detailed_exitcode: bool,
}

impl ShowFlags {
    pub fn format(&self) -> PlanFormat {
        if self.json {
            PlanFormat::Json
        } else {
            self.format
        }
    }
}

/// What a run of `apply` or `destroy` was asked for, whichever command it came from.
#[derive(Debug, Clone)]
pub struct RunFlags {
    pub auto_approve: bool,
    pub no_wait: bool,
    pub worker_timeout: std::time::Duration,
    pub json: bool,
}

/// `--target` and `--replace`, as Terraform's: for the exception, not for routine use.
#[derive(Debug, Args, Default)]
pub struct SelectFlags {
    /// Plan only ADDRESS (`ecs_service.dev-worker`, `subnet.private[0]`, as the plan prints
    /// it), what it needs, and what must change with it; repeatable. The rest of the stack is
    /// left as it is, and the plan says how many changes it leaves out.
    #[arg(long = "target", value_name = "ADDRESS")]
    pub targets: Vec<String>,
    /// Replace ADDRESS although the spec and AWS agree (a resource damaged outside
    /// prefect-ecs, a worker to start from nothing); repeatable. What refers to its id follows.
    #[arg(long = "replace", value_name = "ADDRESS")]
    pub replace: Vec<String>,
}

impl SelectFlags {
    pub fn selection(&self) -> crate::plan::Selection {
        crate::plan::Selection {
            targets: self.targets.clone(),
            replace: self.replace.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ApplyFlags {
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Do not wait for ECS services to reach their desired count, nor for the workers to
    /// heartbeat to their work pools.
    #[arg(long)]
    pub no_wait: bool,
    /// After the services are stable, how long apply waits for each worker's first
    /// heartbeat to its work pool before it prints a diagnosis and fails.
    #[arg(long, env = "PREFECT_ECS_WORKER_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub worker_timeout: std::time::Duration,
    /// Report as JSON lines (the plan, each operation, the summary); needs --auto-approve or
    /// a saved plan.
    #[arg(long)]
    pub json: bool,
}

impl ApplyFlags {
    pub fn run(&self) -> RunFlags {
        RunFlags {
            auto_approve: self.auto_approve,
            no_wait: self.no_wait,
            worker_timeout: self.worker_timeout,
            json: self.json,
        }
    }
}

#[derive(Debug, Args)]
pub struct DestroyFlags {
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// For a protected stack (`[stack] protected = true`): its environment's name (the
    /// stack's name in a file without environments), typed out to destroy it.
    #[arg(long, value_name = "NAME")]
    pub confirm: Option<String>,
    /// Report as JSON lines (the plan, each operation, the summary); needs --auto-approve.
    #[arg(long)]
    pub json: bool,
    /// Accepted for scripts written for apply; destroy always waits for what its next
    /// deletion needs (a service drained before its subnets go), and for nothing else.
    #[arg(long, hide = true)]
    pub no_wait: bool,
}

impl DestroyFlags {
    pub fn run(&self) -> RunFlags {
        RunFlags {
            auto_approve: self.auto_approve,
            no_wait: self.no_wait,
            worker_timeout: std::time::Duration::ZERO,
            json: self.json,
        }
    }
}
