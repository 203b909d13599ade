//! The pipeline contract: exit codes, machine-readable plans, saved plans that apply exactly or
//! refuse naming what changed, progress lines in a CI log, and the stack's outputs.

use serde_json::Value;

use crate::support::TestStack;
use crate::support::aws::{Aws, leftovers, log_group};

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_apply_and_refuse_like_a_pipeline() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("ci");
    let worker = stack.worker(0).to_owned();
    let trace = [("RUST_LOG", "trace")];

    // From empty: changes, so 2; the JSON and Markdown documents say the same.
    stack
        .run(&["plan", "--detailed-exitcode"], &[])
        .assert_code(2);
    let out = stack
        .run(&["plan", "--json", "--detailed-exitcode"], &trace)
        .assert_code(2);
    let doc = json(&out.stdout);
    assert_eq!(doc["format_version"], 1);
    let changes = doc["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), stack.addresses().len());
    assert!(changes.iter().all(|c| c["action"] == "create"));
    let secret = changes
        .iter()
        .find(|c| c["address"] == "secret.api_key")
        .expect("the secret is planned");
    assert_eq!(secret["sensitive_paths"], serde_json::json!(["value"]));
    assert!(secret["after"].get("value").is_none(), "{secret}");
    let service = changes
        .iter()
        .find(|c| c["address"] == format!("ecs_service.{worker}"))
        .expect("the service is planned");
    assert!(
        service["unknown_paths"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "cluster")),
        "{service}"
    );
    let md = stack
        .run(&["plan", "--format", "markdown"], &[])
        .assert_ok()
        .stdout;
    assert!(md.contains("| `+` | `vpc.main` | create |"), "{md}");
    assert!(md.contains("<details>") && !md.contains('\x1b'), "{md}");

    // A saved plan holds no secret and applies without a question (stdin is not a terminal).
    let saved = stack.path("plan.bin");
    let saved = saved.to_str().expect("utf-8 path");
    stack.run(&["plan", "--out", saved], &trace).assert_ok();
    let bytes = std::fs::read(saved).expect("the plan file");
    assert!(
        !String::from_utf8_lossy(&bytes).contains(stack.canary()),
        "the API key is in the plan file"
    );
    stack
        .run_bare(&["show", "--detailed-exitcode", saved], &[])
        .assert_code(2);
    let shown = json(
        &stack
            .run_bare(&["show", "--json", saved], &[])
            .assert_ok()
            .stdout,
    );
    assert_eq!(shown, doc, "show renders the saved plan, which is the plan");

    let out = stack
        .run_bare(&["apply", "--no-wait", saved], &trace)
        .assert_ok();
    // Off a terminal: a start line, then one timestamped line per state change.
    assert!(out.stdout.contains("apply started at "), "{out}");
    for address in stack.addresses() {
        for state in ["creating…", "created ("] {
            let line = format!("  + {address}: {state}");
            assert!(
                out.stdout
                    .lines()
                    .any(|l| l.starts_with('+') && l.contains("s  ") && l.contains(&line)),
                "no progress line `+<t>s {line}`\n{out}"
            );
        }
    }
    // Issue 15, item 9: what happened, in one line, counted as the plan counts.
    let created = out
        .stdout
        .lines()
        .filter(|l| l.contains(": created ("))
        .count();
    assert!(created >= stack.addresses().len(), "{out}");
    let complete =
        format!("Apply complete: {created} added, 0 changed, 0 destroyed ({created} operations, ");
    assert!(out.stdout.contains(&complete), "{out}");
    assert!(!out.stdout.contains("Durations"), "{out}");

    // A pipeline that re-runs its apply step is told why the plan is refused.
    let out = stack
        .run_bare(&["apply", "--no-wait", saved], &[])
        .assert_failed();
    assert!(
        out.stderr
            .contains("this plan was most likely applied already"),
        "{out}"
    );

    stack
        .run(&["plan", "--detailed-exitcode"], &[])
        .assert_code(0);
    stack.run(&["plan", "--out", saved], &[]).assert_code(0);
    stack
        .run_bare(&["show", "--detailed-exitcode", saved], &[])
        .assert_code(0);

    let outputs = json(&stack.run(&["output", "--json"], &[]).assert_ok().stdout);
    assert!(
        outputs["vpc_id"]
            .as_str()
            .is_some_and(|v| v.starts_with("vpc-")),
        "{outputs}"
    );
    assert_eq!(
        outputs["private_subnet_ids"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(outputs["log_group"], stack.log_group());
    assert!(
        outputs["services"][&worker]["service_arn"].is_string(),
        "{outputs}"
    );
    // Issue 15, item 13: one output, as a script wants it; the flow-run role and the pools.
    let raw = stack.run(&["output", "--raw", "vpc_id"], &[]).assert_ok();
    assert_eq!(
        raw.stdout,
        format!("{}\n", outputs["vpc_id"].as_str().unwrap())
    );
    let path = format!("services.{worker}.service_arn");
    let raw = stack.run(&["output", "--raw", &path], &[]).assert_ok();
    assert_eq!(
        raw.stdout.trim(),
        outputs["services"][&worker]["service_arn"]
    );
    assert!(outputs["flow_run_role_arn"].is_string(), "{outputs}");
    assert!(outputs["work_pools"].is_array(), "{outputs}");
    let list = stack
        .run(&["output", "--raw", "private_subnet_ids"], &[])
        .assert_failed();
    assert!(list.stderr.contains("use --json"), "{list}");
    let none = stack.run(&["output", "nope"], &[]).assert_failed();
    assert!(
        none.stderr.contains("has no output \"nope\"; it has: "),
        "{none}"
    );

    // Out of band, after the plan was saved: apply refuses, names it, and changes nothing.
    aws.logs
        .put_retention_policy()
        .log_group_name(stack.log_group())
        .retention_in_days(7)
        .send()
        .await
        .expect("PutRetentionPolicy");
    let out = stack
        .run_bare(&["apply", "--no-wait", saved], &[])
        .assert_failed();
    assert!(
        out.stderr
            .contains("log_group.workers: retention_in_days changed"),
        "the refusal must name the resource and the attribute\n{out}"
    );
    let (_, retention, _) = log_group(&aws, &stack.log_group())
        .await
        .expect("log group");
    assert_eq!(retention, Some(7), "a refused apply changed AWS");

    // The spec changes too: both are reported at once.
    stack.workers[0].cpu = 1024;
    stack.workers[0].memory = 2048;
    let out = stack
        .run_bare(&["apply", "--no-wait", saved], &[])
        .assert_failed();
    assert!(out.stderr.contains("the file changed"), "{out}");
    assert!(
        out.stderr.contains(&format!(
            // (tags too: the prefect-ecs:spec digest follows the spec)
            "desired ecs_task_definition.{worker}: cpu, memory, tags changed"
        )),
        "{out}"
    );
    assert!(out.stderr.contains("log_group.workers"), "{out}");

    // apply --json: one JSON object per line, ending with the summary.
    let out = stack
        .run(&["apply", "--auto-approve", "--no-wait", "--json"], &[])
        .assert_ok();
    let events: Vec<Value> = out.stdout.lines().map(json).collect();
    assert_eq!(
        events.first().map(|e| e["type"].clone()),
        Some("plan".into())
    );
    assert!(events.iter().all(|e| e["format_version"] == 1), "{out}");
    let last = events.last().expect("events");
    assert_eq!(
        (last["type"].as_str(), last["ok"].as_bool()),
        (Some("summary"), Some(true))
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "finished" && e["address"] == "log_group.workers"),
        "{out}"
    );

    // Issue 15, bug 1: a saved plan that replaces the task definition (and so updates the
    // service to an ARN known only after apply) applies; it was always refused as stale.
    stack.workers[0].cpu = 512;
    stack.workers[0].memory = 1024;
    let replace = stack.path("replace.plan");
    let replace = replace.to_str().expect("utf-8 path");
    let out = stack.run(&["plan", "--out", replace], &[]).assert_ok();
    assert!(
        out.stdout
            .contains(&format!("ecs_task_definition.{worker}")),
        "{out}"
    );
    stack
        .run_bare(&["apply", "--no-wait", replace], &[])
        .assert_ok();

    stack
        .run(&["plan", "--detailed-exitcode"], &[])
        .assert_code(0);
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// Issue 15, bug 5: following `show`'s hint, `plan --out X.toml X.toml`, overwrote the spec.
#[test]
fn plan_out_never_overwrites_the_spec_or_a_file_that_is_not_a_plan() {
    let stack = TestStack::new("outguard");
    let spec = stack.write();
    let spec_text = std::fs::read_to_string(&spec).expect("the spec");
    let spec_path = spec.to_str().expect("utf-8 path");

    // show's hint names a new file, not the one shown.
    let out = stack.run_bare(&["show", spec_path], &[]).assert_failed();
    let hint = spec.with_extension("plan");
    assert!(
        out.stderr
            .contains(&format!("plan --out {} SPEC", hint.display())),
        "{out}"
    );

    // The spec itself: refused, --force or not, before any call to AWS.
    for force in [&[][..], &["--force"][..]] {
        let args: Vec<&str> = ["plan", "--out", spec_path]
            .into_iter()
            .chain(force.iter().copied())
            .collect();
        let out = stack.run(&args, &[]).assert_failed();
        assert!(out.stderr.contains("is the spec itself"), "{out}");
        assert_eq!(std::fs::read_to_string(&spec).unwrap(), spec_text);
    }

    // Another file that is not a saved plan: refused unless --force.
    let notes = stack.path("notes.txt");
    std::fs::write(&notes, "mine\n").unwrap();
    let notes_path = notes.to_str().expect("utf-8 path");
    let out = stack
        .run(&["plan", "--out", notes_path], &[])
        .assert_failed();
    assert!(out.stderr.contains("is not a saved plan"), "{out}");
    assert!(out.stderr.contains("--force"), "{out}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine\n");
    stack
        .run(&["plan", "--out", notes_path, "--force"], &[])
        .assert_ok();
    // Now a saved plan: a new plan may replace it without --force.
    stack.run(&["plan", "--out", notes_path], &[]).assert_ok();
    assert!(
        stack
            .run_bare(&["show", notes_path], &[])
            .assert_ok()
            .stdout
            .contains("Saved plan of")
    );
}
