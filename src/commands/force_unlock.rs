//! `force-unlock`: break a stack's lock, saying whose it was, after asking (unless `--force`):
//! a lock broken under a live run lets a second run change the stack beside it.

use std::process::ExitCode;
use std::time::Duration;

use std::io::{BufRead, IsTerminal, Write};

use miette::{IntoDiagnostic, Result, miette};

use super::Settings;

pub async fn run(settings: &Settings, stack: &str, force: bool) -> Result<ExitCode> {
    let region = settings.region(None).await?;
    let aws = settings
        .connect_aws(stack, &region, Duration::from_secs(60))
        .await;
    match aws.lock_info(stack).await? {
        None => println!("stack \"{stack}\" is not locked."),
        Some(info) => {
            if !force {
                ask(stack, &info.to_string())?;
            }
            aws.break_lock(stack).await?;
            println!("released the lock of stack \"{stack}\" held by {info}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The holder shown, then "yes" or nothing happens.
fn ask(stack: &str, holder: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(miette!(
            "stack \"{stack}\" is locked by {holder}; force-unlock needs confirmation but stdin is \
             not a terminal: pass --force once you know that run is dead"
        ));
    }
    print!(
        "stack \"{stack}\" is locked by {holder}.\nBreak it only if that run is dead: a live \
         one would go on changing the stack beside the next run.\nDo you want to break the lock? \
         Only 'yes' will be accepted: "
    );
    std::io::stdout().flush().into_diagnostic()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .into_diagnostic()?;
    if line.trim() != "yes" {
        return Err(miette!("force-unlock cancelled: the lock is kept"));
    }
    Ok(())
}
