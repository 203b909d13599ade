//! `force-unlock`: break a stack's lock, saying whose it was.

use std::process::ExitCode;
use std::time::Duration;

use miette::Result;

use super::Settings;

pub async fn run(settings: &Settings, stack: &str) -> Result<ExitCode> {
    let region = settings.region(None).await?;
    let aws = settings
        .connect_aws(stack, &region, Duration::from_secs(60))
        .await;
    match aws.lock_info(stack).await? {
        None => println!("stack \"{stack}\" is not locked."),
        Some(info) => {
            aws.break_lock(stack).await?;
            println!("released the lock of stack \"{stack}\" held by {info}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
