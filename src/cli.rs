//! Command-line flags (clap). Parsing only: resolution and work happen in `commands`.

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
    /// AWS region (default: the spec's, then AWS_REGION / the AWS config).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS shared-config profile.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (e.g. a local emulator).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// At most this many resource operations at once.
    #[arg(long, global = true, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub parallelism: u16,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the spec and report every problem at once. Makes no AWS call.
    Validate { spec: PathBuf },
    /// Show what apply would change, resource by resource, and why.
    Plan { spec: PathBuf },
    /// Make AWS match the spec.
    Apply {
        spec: PathBuf,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Delete every resource this stack owns, and nothing else.
    Destroy {
        spec: PathBuf,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Print the resource graph as Graphviz DOT. Makes no AWS call.
    Graph { spec: PathBuf },
    /// Break a stack's lock left by a run that died (check that it is dead first).
    ForceUnlock {
        /// The stack name (`[stack] name` of its spec).
        stack: String,
    },
}

#[derive(Debug, Args)]
pub struct RunFlags {
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Do not wait for ECS services to reach their desired count.
    #[arg(long)]
    pub no_wait: bool,
}
