//! `verify`: every check one line, pass or fail, with the fix; exit 1 when any failed.

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::Settings;
use super::settings::{credential, prefect_api};
use crate::graph;

pub async fn run(settings: &Settings, path: &Path) -> Result<ExitCode> {
    use crate::verify::{Check, image_fits_template, worker_permissions};
    let mut spec = settings.load(path)?;
    let mut checks: Vec<Check> = Vec::new();
    let region = match settings.region(spec.region.as_deref()).await {
        Ok(r) => r,
        Err(e) => {
            println!("FAIL  AWS region: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let aws = settings
        .connect_aws(&spec.name, &region, settings.timeout)
        .await;
    // Another account's credentials: no call but STS's, and nothing else to check.
    if let Some(want) = &spec.account_id {
        let check = match aws.identity(&settings.conn).await {
            Ok(id) => super::context::same_account(&spec, &id.account)
                .map(|_| format!("{want}, as [stack] account_id says"))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &check {
            println!("FAIL  AWS account: {e}");
            return Ok(ExitCode::FAILURE);
        }
        checks.push(("AWS account".into(), check));
    }
    match aws.available_zones().await {
        Ok(zones) => {
            checks.push((
                format!("AWS answers in {region}"),
                Ok(format!("{} zones available", zones.len())),
            ));
            let missing: Vec<&str> = spec
                .network
                .zones
                .iter()
                .map(|z| z.az.as_str())
                .filter(|az| !zones.iter().any(|z| z == az))
                .collect();
            checks.push((
                "availability zones".into(),
                if missing.is_empty() {
                    Ok(format!("{} used, all available", spec.network.zones.len()))
                } else {
                    Err(format!(
                        "{} not available in {region}; pick others with [network] availability_zones",
                        missing.join(", ")
                    ))
                },
            ));
        }
        Err(e) => checks.push((
            format!("AWS answers in {region}"),
            Err(format!(
                "{e}; check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and region"
            )),
        )),
    }
    if let Err(e) = aws.resolve_tagged_subnets(&mut spec).await {
        checks.push(("subnets by tag".into(), Err(e.to_string())));
    }
    if let Some(existing) = spec
        .network
        .existing
        .as_ref()
        .filter(|e| !e.subnet_ids.is_empty())
    {
        use crate::stack::Stack;
        match aws.network_facts(existing).await {
            Ok(facts) => checks.extend(crate::network::check(&spec, existing, &facts)),
            Err(e) => checks.push((
                format!("VPC {}", existing.vpc_id),
                Err(format!("cannot read it: {e}")),
            )),
        }
    }
    let nats = spec.network.nat_count();
    // The stack's own addresses are part of what it needs, not others' use of the quota.
    let needed = |ours: usize| match ours {
        0 => format!("{nats} needed"),
        _ => format!(
            "{nats} needed ({} held by this stack already)",
            ours.min(nats)
        ),
    };
    match aws.elastic_ips().await {
        Ok((Some(limit), used, ours)) => checks.push((
            "Elastic IPs for the NAT gateways".into(),
            if used as i64 + nats.max(ours) as i64 <= limit {
                Ok(format!("{}, {used} of {limit} in use by others", needed(ours)))
            } else {
                Err(format!(
                    "{} but {used} of {limit} are in use by others: release unused addresses or ask AWS for a higher quota",
                    needed(ours)
                ))
            },
        )),
        Ok((None, used, ours)) => checks.push((
            "Elastic IPs for the NAT gateways".into(),
            Ok(format!(
                "{}, {used} in use by others (the account limit is not reported)",
                needed(ours)
            )),
        )),
        Err(e) => checks.push(("Elastic IPs for the NAT gateways".into(), Err(e.to_string()))),
    }
    let credential = credential(&spec);
    let prefect = credential
        .as_ref()
        .ok()
        .map(|c| prefect_api(&spec, c.clone()));
    let mut template = None;
    match (credential, prefect) {
        (Err(e), _) => checks.push(("Prefect credential".into(), Err(e.to_string()))),
        (Ok(_), Some(Ok(api))) => {
            checks.push((
                format!("Prefect API at {} with the credential", api.url()),
                api.check_access()
                    .await
                    .map(|_| "reachable, credential accepted".to_owned())
                    .map_err(|e| {
                        format!("{e}; check [prefect] api_url (or account_id and workspace_id) and the credential")
                    }),
            ));
            match api.ecs_template().await {
                Ok(t) => {
                    template = Some(t);
                    let mut kinds = Vec::new();
                    for pool in &spec.work_pools {
                        if let Ok(Some(p)) = api.pool_status(&pool.name).await
                            && p.kind != "ecs"
                        {
                            kinds.push(format!("{} is of type {}", pool.name, p.kind));
                        }
                    }
                    checks.push((
                        "work pool type ecs".into(),
                        if kinds.is_empty() {
                            Ok("the server offers ecs pools".into())
                        } else {
                            Err(format!(
                                "{}: a pool's type cannot change; rename the worker's work_pool",
                                kinds.join(", ")
                            ))
                        },
                    ));
                }
                Err(e) => checks.push(("work pool type ecs".into(), Err(e.to_string()))),
            }
        }
        (Ok(_), Some(Err(e))) => checks.push(("Prefect API".into(), Err(e.to_string()))),
        (Ok(_), None) => {}
    }
    for w in &spec.workers {
        checks.push((
            format!("image of worker {}", w.name),
            image_fits_template(
                &w.image,
                w.env.get("EXTRA_PIP_PACKAGES").map(String::as_str),
            ),
        ));
    }
    let graph = graph::build(&spec, &region, None, template.as_ref())?;
    checks.push((
        "worker permissions in the IAM policies".into(),
        worker_permissions(&graph),
    ));
    let mut failed = 0;
    for (name, result) in &checks {
        match result {
            Ok(detail) => println!("ok    {name}: {detail}"),
            Err(fix) => {
                failed += 1;
                println!("FAIL  {name}: {fix}");
            }
        }
    }
    println!("\n{} check(s), {failed} failed.", checks.len());
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
