use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    // `prefect-ecs plan | head` must end quietly like any Unix tool, not panic on a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // No library's log line reaches the user unless RUST_LOG asks for it (aws-config's WARNs
    // about a missing profile are said once, in plain words, by the identity check); colour
    // only on a terminal, and never with --no-color or NO_COLOR.
    let no_color = std::env::args_os().any(|a| a == "--no-color")
        || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "off,prefect_ecs=warn,prefect_ecs_core=warn,prefect_ecs::wait=info".into()
            }),
        )
        .with_ansi(!no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let _ = miette::set_hook(Box::new(|_| Box::new(prefect_ecs::spec::report_handler())));
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(message) =
        prefect_ecs::habits::terraform_habit(&args, &prefect_ecs::cli::Cli::command())
    {
        eprintln!("error: {message}\n\nFor more information, try '--help'.");
        return ExitCode::from(2);
    }
    match prefect_ecs::commands::run(prefect_ecs::cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:?}");
            ExitCode::FAILURE
        }
    }
}
