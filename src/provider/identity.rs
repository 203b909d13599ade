//! Who and where, before anything else (issue 15, item 7): one STS GetCallerIdentity with a
//! short timeout and one retry at most, so that a first run without credentials, with a
//! profile that does not exist or with an endpoint nothing answers on is told so in one
//! sentence within seconds, instead of a Debug dump after the SDK's retries. The account it
//! answers with is shown in the plan's header and in the confirmation prompt.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_sts::error::SdkError;

use super::{Aws, Connection};
use crate::apply::ProviderError;

/// The AWS identity a run acts as.
#[derive(Debug, Clone)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// The STS client's own limits: an answer within 15 s or a plain error. What is wrong for
/// good (no credentials, refused ones, a port nothing listens on) fails at the first answer;
/// what AWS has now and then (a 503, throttling, a dropped connection, an endpoint slow to
/// answer under load) is retried a few times with short backoffs. An attempt may take 5 s:
/// a busy endpoint is slow, not gone, and 2 s proved too short on a loaded machine.
pub(super) fn sts_config(cfg: &aws_config::SdkConfig) -> aws_sdk_sts::Config {
    aws_sdk_sts::config::Builder::from(cfg)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .build()
}

/// How long the identity check waits in all, said in the error when it runs out.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// Codes with which STS refuses the credentials themselves.
const REFUSED: [&str; 7] = [
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
];

impl Aws {
    /// GetCallerIdentity; an error is one sentence saying what is wrong and what to do.
    pub async fn identity(&self, conn: &Connection) -> Result<Identity, ProviderError> {
        match self.sts.get_caller_identity().send().await {
            Ok(out) => Ok(Identity {
                account: out.account().unwrap_or("unknown").to_owned(),
                arn: out.arn().unwrap_or_default().to_owned(),
            }),
            Err(e) => Err(ProviderError(explain(&e, conn, &self.region))),
        }
    }
}

fn explain<E, R>(e: &SdkError<E, R>, conn: &Connection, region: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let endpoint = conn
        .endpoint_url
        .clone()
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
    let chain = super::prefect::error_chain(e);
    let profile = conn
        .profile
        .as_deref()
        .map(|p| format!("profile \"{p}\""))
        .or_else(|| {
            std::env::var("AWS_PROFILE")
                .ok()
                .map(|p| format!("profile \"{p}\" (AWS_PROFILE)"))
        });
    let undefined = conn.profile.as_deref().is_some_and(|p| !profile_defined(p));
    if undefined
        || chain.contains("ProfileNotDefined")
        || chain.contains("could not find source profile")
    {
        let name = profile.unwrap_or_else(|| "the profile".to_owned());
        return format!(
            "AWS {name} is not defined in the AWS config files (~/.aws/config, \
             ~/.aws/credentials, or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE); name one \
             that is (`aws configure list-profiles`)"
        );
    }
    if chain.contains("credential") && !matches!(e, SdkError::ServiceError(_)) {
        let tried = match &profile {
            Some(p) => format!("{p} of the AWS config files"),
            None => "the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), the AWS \
                     config files (AWS_PROFILE, ~/.aws), web identity, the ECS container and \
                     the EC2 instance metadata"
                .to_owned(),
        };
        return format!(
            "no AWS credentials found (tried {tried}); set AWS_PROFILE or --profile to a \
             configured profile, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
    }
    match e {
        SdkError::ServiceError(s) if !REFUSED.contains(&s.err().code().unwrap_or_default()) => {
            let err = s.err();
            format!(
                "AWS STS at {endpoint} ({region}) answered {}: {}; try again, or check \
                 --endpoint-url / AWS_ENDPOINT_URL",
                err.code().unwrap_or("an error"),
                err.message().unwrap_or_default()
            )
        }
        SdkError::ServiceError(s) => {
            let err = s.err();
            let code = err.code().unwrap_or("error");
            let message = err.message().unwrap_or_default();
            let source = profile.map(|p| format!(" from {p}")).unwrap_or_default();
            format!(
                "AWS refused the credentials{source} ({code}: {message}); check that they are \
                 current (`aws sts get-caller-identity` tells the same)"
            )
        }
        SdkError::TimeoutError(_) => format!(
            "AWS did not answer at {endpoint} ({region}) within {} s; check the network, or \
             --endpoint-url / AWS_ENDPOINT_URL",
            OPERATION_TIMEOUT.as_secs()
        ),
        _ => format!(
            "cannot reach AWS at {endpoint} ({region}): {}; check the network, or \
             --endpoint-url / AWS_ENDPOINT_URL",
            last_cause(e)
        ),
    }
}

/// Whether `name` has a section in the AWS config or credentials file (`[profile name]`,
/// `[name]`), wherever AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE or ~/.aws put them.
fn profile_defined(name: &str) -> bool {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let sections = [
        (file("AWS_CONFIG_FILE", "config"), true),
        (file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), false),
    ];
    sections.into_iter().any(|(path, config)| {
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
            return false;
        };
        text.lines().any(|line| {
            let Some(header) = line
                .trim()
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
            else {
                return false;
            };
            let header = header.trim();
            let header = match header.strip_prefix("profile ") {
                Some(named) if config => named.trim(),
                _ => header,
            };
            header == name
        })
    })
}

/// The innermost cause: `Connection refused (os error 111)`, not the SDK's wrappers.
fn last_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}
