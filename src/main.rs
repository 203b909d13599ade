use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,prefect_ecs::wait=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // A message must survive a CI log intact: a wrapped flag name cannot be searched for.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    match prefect_ecs::commands::run(prefect_ecs::cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:?}");
            ExitCode::FAILURE
        }
    }
}
