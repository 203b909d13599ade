use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `prefect-ecs plan | head` must end quietly like any Unix tool, not panic on a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
