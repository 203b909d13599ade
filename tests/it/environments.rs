//! Issue 13, environments: one file, `[env.<name>]` overlays selected with `--env`; two
//! environments of one file applied side by side in one account and region, each destroyed
//! without touching the other; the header naming what a run acts on; a saved plan bound to
//! its environment; `account_id` and `protected`; `--var`, `--var-file` and `render`.

use serde_json::Value;

use crate::support::aws::{self, Aws, Named, assert_owned, leftovers_of};
use crate::support::{TestStack, moto};

/// A test stack with environments `blue` and `green`; each gets its own work pool.
fn two_environments(label: &str) -> TestStack {
    let mut stack = TestStack::new(label);
    let w = stack.worker(0).to_owned();
    stack.extra = ["blue", "green"]
        .iter()
        .map(|env| {
            format!(
                "[env.{env}]\nlogs.retention_days = {}\n\n[[env.{env}.worker]]\nname = \"{w}\"\n\
                 work_pool = \"{}-{env}-pool\"\n\n",
                if *env == "blue" { 7 } else { 14 },
                stack.name
            )
        })
        .collect();
    stack
}

fn named(stack: &TestStack, env: &str) -> Vec<Named> {
    let name = format!("{}-{env}", stack.name);
    vec![Named {
        worker: stack.worker(0).to_owned(),
        pool: format!("{}-{env}-pool", stack.name),
        family: format!("{name}-{}", stack.worker(0)),
    }]
}

#[tokio::test(flavor = "multi_thread")]
async fn two_environments_of_one_file_live_side_by_side_and_go_one_at_a_time() {
    let stack = two_environments("envs");
    let aws = Aws::for_endpoint(&moto().endpoint).await;
    let (blue, green) = (
        format!("{}-blue", stack.name),
        format!("{}-green", stack.name),
    );

    // Without --env the file is refused, naming its environments.
    let out = stack.plan().assert_failed();
    assert!(
        out.stderr
            .contains("this file defines environments (blue, green): choose one with --env"),
        "{out}"
    );

    // The plan's first line names environment, stack, account, region and workspace.
    let out = stack.run(&["plan", "--env", "blue"], &[]).assert_ok();
    let first = out.stdout.lines().next().unwrap_or_default();
    let workspace = crate::support::prefect::prefect().api_url.clone();
    assert_eq!(
        first,
        format!(
            "prefect-ecs will perform these actions on stack \"{blue}\" (env blue) in account \
             123456789012, us-east-1, Prefect workspace {workspace}:"
        ),
        "{out}"
    );
    let json = stack
        .run(&["plan", "--json"], &[("PREFECT_ECS_ENV", "blue")])
        .assert_ok();
    let doc: Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    assert_eq!(doc["stack"], blue.as_str());
    assert_eq!(doc["target"]["env"], "blue");
    assert_eq!(doc["target"]["account"], "123456789012");
    assert_eq!(doc["target"]["region"], "us-east-1");
    assert_eq!(doc["target"]["workspace"], workspace.as_str());
    let md = stack
        .run(&["plan", "--format", "markdown", "--env", "blue"], &[])
        .assert_ok();
    assert!(
        md.stdout
            .contains("env `blue` · account `123456789012` · region `us-east-1`"),
        "{md}"
    );

    // Blue applied from a saved plan; the plan is bound to blue.
    let saved = stack.path("blue.plan");
    let saved = saved.to_str().expect("utf-8");
    stack
        .run(&["plan", "--env", "blue", "--out", saved], &[])
        .assert_ok();
    let out = stack
        .run_bare(&["apply", saved, "--env", "green", "--no-wait"], &[])
        .assert_failed();
    assert!(
        out.stderr
            .contains("was made for environment blue, not --env green"),
        "{out}"
    );
    stack
        .run_bare(&["apply", saved, "--no-wait"], &[])
        .assert_ok();
    stack
        .run(
            &["apply", "--env", "green", "--auto-approve", "--no-wait"],
            &[],
        )
        .assert_ok();

    // Each environment is a stack of its own, tagged as such, named after it.
    for (env, name, retention) in [("blue", &blue, 7), ("green", &green, 14)] {
        let (cluster, tags) = aws::cluster(&aws, &format!("{name}-cluster"))
            .await
            .unwrap_or_else(|| panic!("{env}'s cluster"));
        assert_eq!(cluster.status(), Some("ACTIVE"));
        assert_owned(&tags, name, "ecs_cluster.main");
        let (_, days, tags) = aws::log_group(&aws, &format!("/prefect-ecs/{name}/workers"))
            .await
            .unwrap_or_else(|| panic!("{env}'s log group"));
        assert_eq!(days, Some(retention));
        assert_owned(&tags, name, "log_group.workers");
        let family = format!("{name}-{}", stack.worker(0));
        assert_eq!(
            aws::active_revisions(&aws, &family).await.len(),
            1,
            "{family}"
        );
        let (_, _, tags) = aws::role(&aws, &format!("{name}-task-execution-role")).await;
        assert_owned(&tags, name, "iam_role.execution");
        let pool = format!("{}-{env}-pool", stack.name);
        assert!(
            crate::support::prefect::prefect().pool(&pool).is_some(),
            "{pool}"
        );
    }
    for env in ["blue", "green"] {
        stack
            .run(&["plan", "--env", env, "--detailed-exitcode"], &[])
            .assert_ok();
    }

    // Blue goes; green is untouched.
    stack
        .run(&["destroy", "--env", "blue", "--auto-approve"], &[])
        .assert_ok();
    let left = leftovers_of(&aws, &blue, &named(&stack, "blue")).await;
    assert!(left.is_empty(), "blue left {left:?}");
    let out = stack
        .run(&["plan", "--env", "green", "--detailed-exitcode"], &[])
        .assert_ok();
    assert!(out.stdout.contains("No changes."), "{out}");
    stack
        .run(&["destroy", "--env", "green", "--auto-approve"], &[])
        .assert_ok();
    let left = leftovers_of(&aws, &green, &named(&stack, "green")).await;
    assert!(left.is_empty(), "green left {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protected_environment_needs_its_name_and_an_account_mismatch_stops_everything() {
    let mut stack = TestStack::new("protected");
    let w = stack.worker(0).to_owned();
    let pool = |env: &str| format!("{}-{env}-pool", stack.name);
    stack.extra = format!(
        "[env.prod]\nstack.account_id = \"123456789012\"\nstack.protected = true\n\n\
         [[env.prod.worker]]\nname = \"{w}\"\nwork_pool = \"{}\"\n\n\
         [env.other]\nstack.account_id = \"111111111111\"\n\n\
         [[env.other.worker]]\nname = \"{w}\"\nwork_pool = \"{}\"\n",
        pool("prod"),
        pool("other")
    );
    let aws = Aws::for_endpoint(&moto().endpoint).await;

    // Another account's environment: refused before any read, naming both accounts.
    let commands: [&[&str]; 2] = [&["plan"], &["apply", "--auto-approve", "--no-wait"]];
    for command in commands {
        let args: Vec<&str> = command.iter().copied().chain(["--env", "other"]).collect();
        let out = stack.run(&args, &[]).assert_failed();
        assert!(
            out.stderr.contains(&format!(
                "stack \"{}-other\" (env other) belongs in AWS account 111111111111, but these \
                 credentials are of account 123456789012: nothing was read or changed",
                stack.name
            )),
            "{out}"
        );
    }
    let out = stack.run(&["verify", "--env", "other"], &[]);
    assert!(out.stdout.contains("FAIL  AWS account"), "{out}");
    let other = aws::Ec2Stack::load(&aws, &format!("{}-other", stack.name)).await;
    assert!(
        other.addresses().is_empty(),
        "nothing of the other environment was made"
    );

    stack
        .run(
            &["apply", "--env", "prod", "--auto-approve", "--no-wait"],
            &[],
        )
        .assert_ok();
    let name = format!("{}-prod", stack.name);
    let cluster = format!("{name}-cluster");
    // --auto-approve does not stand in for the name; a wrong name is refused too.
    let out = stack
        .run(&["destroy", "--env", "prod", "--auto-approve"], &[])
        .assert_failed();
    assert!(out.stderr.contains("destroy needs --confirm prod"), "{out}");
    let destroy = |confirm: &str| {
        let args = [
            "destroy",
            "--env",
            "prod",
            "--auto-approve",
            "--confirm",
            confirm,
        ];
        stack.run(&args, &[])
    };
    let out = destroy("staging").assert_failed();
    assert!(
        out.stderr
            .contains("--confirm staging does not name this environment (prod)"),
        "{out}"
    );
    let (c, _) = aws::cluster(&aws, &cluster).await.expect("cluster");
    assert_eq!(c.status(), Some("ACTIVE"), "nothing was deleted");
    destroy("prod").assert_ok();
    let named = vec![Named {
        worker: w.clone(),
        pool: pool("prod"),
        family: format!("{name}-{w}"),
    }];
    let left = leftovers_of(&aws, &name, &named).await;
    assert!(left.is_empty(), "{left:?}");
}

/// `${KEY}` from `--var` and `--var-file` (a `--var` wins), an unset one reported as an unset
/// variable is; `render` prints the environment's spec, which validates as it is.
#[test]
fn vars_fill_the_spec_and_render_prints_what_an_environment_amounts_to() {
    let mut stack = two_environments("vars");
    stack.extra += "[env.blue.cluster]\nname = \"${CLUSTER}\"\n";
    let out = stack
        .run(&["validate", "--env", "blue"], &[])
        .assert_failed();
    assert!(
        out.stderr
            .contains("environment variable CLUSTER is not set; set it (or pass --var CLUSTER=…)"),
        "{out}"
    );
    // Without --env, validate checks every environment: green is valid, blue is not.
    let out = stack.run(&["validate"], &[]).assert_failed();
    assert!(out.stdout.contains("(env green) is valid"), "{out}");
    assert!(
        out.stderr.contains("1 of 2 environments invalid (blue)"),
        "{out}"
    );

    let vars = stack.path("vars.toml");
    std::fs::write(&vars, "CLUSTER = \"from-file\"\n").expect("var file");
    let vars = vars.to_str().expect("utf-8");
    let render = |extra: &[&str]| {
        let args: Vec<&str> = ["render", "--env", "blue", "--var-file", vars]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        stack.run(&args, &[]).assert_ok().stdout
    };
    let text = render(&[]);
    assert!(text.contains("name = \"from-file\""), "{text}");
    let text = render(&["--var", "CLUSTER=from-flag"]);
    assert!(text.contains("name = \"from-flag\""), "{text}");
    assert!(
        text.contains(&format!("name = \"{}-blue\"", stack.name)),
        "{text}"
    );
    assert!(text.contains("retention_days = 7"), "{text}");
    assert!(!text.contains("[env."), "{text}");

    // What render printed is a spec of its own, valid without environments or variables.
    let rendered = stack.path("rendered.toml");
    std::fs::write(&rendered, &text).expect("rendered spec");
    let out = stack
        .run_bare(&["validate", rendered.to_str().expect("utf-8")], &[])
        .assert_ok();
    assert!(
        out.stdout
            .contains(&format!("stack \"{}-blue\" is valid", stack.name)),
        "{out}"
    );
    let out = stack
        .run(&["validate", "--env", "blue", "--var", "not a var"], &[])
        .assert_failed();
    assert!(
        out.stderr
            .contains("a --var is KEY=VALUE, and one of them has no ="),
        "{out}"
    );
    assert!(!out.stderr.contains("not a var"), "{out}");
}
