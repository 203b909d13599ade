//! Environments (issue 13): overlays merged, names derived, selection refused when ambiguous,
//! problems in an overlay reported at the overlay's own line.

use std::path::Path;

use super::tests::env;
use super::*;

const FILE: &str = r#"[stack]
name = "app"
region = "us-east-1"

[prefect]
api_url = "http://127.0.0.1:4200/api"

[network]
nat = "single"
availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]

[[worker]]
name = "w"
cpu = 1024
memory = 2048

[[worker]]
name = "etl"
work_pool = "etl-pool"

[env.dev]
network.nat = "none"

[env.prod]
stack.account_id = "123456789012"
stack.protected = true
network.availability_zones = ["us-east-1a", "us-east-1b"]
cluster.name = "prefect-prod"

[[env.prod.worker]]
name = "w"
desired_count = 2

[[env.prod.worker]]
name = "reports"
"#;

fn parse_in(source: &str, environment: Option<&str>) -> Result<Spec, SpecError> {
    let env = env();
    parse_env(
        source,
        Path::new("app.toml"),
        &|n| env.get(n).cloned(),
        Some("us-east-1"),
        environment,
    )
}

fn messages(err: &SpecError) -> Vec<String> {
    match err {
        SpecError::Invalid { problems, .. } => problems.iter().map(|p| p.message.clone()).collect(),
        SpecError::Io { .. } => panic!("unexpected i/o error"),
    }
}

/// The 1-based line of the first problem's label.
fn first_line(source: &str, err: &SpecError) -> usize {
    let SpecError::Invalid { problems, .. } = err else {
        panic!("unexpected i/o error")
    };
    let offset = problems[0].span.expect("located").offset();
    source[..offset].matches('\n').count() + 1
}

#[test]
fn an_overlay_deep_merges_tables_replaces_arrays_and_merges_workers_by_name() {
    let prod = parse_in(FILE, Some("prod")).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(prod.name, "app-prod");
    assert_eq!(prod.env.as_deref(), Some("prod"));
    assert_eq!(prod.account_id.as_deref(), Some("123456789012"));
    assert!(prod.protected);
    // A table's other keys stay: nat from the base, zones replaced as a whole.
    assert_eq!(prod.network.nat, NatMode::Single);
    let zones: Vec<&str> = prod.network.zones.iter().map(|z| z.az.as_str()).collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1b"]);
    // Workers merge by name (cpu kept, count changed), a new name is added.
    let workers: Vec<(&str, u32, u32)> = prod
        .workers
        .iter()
        .map(|w| (w.name.as_str(), w.cpu, w.desired_count))
        .collect();
    assert_eq!(
        workers,
        [("w", 1024, 2), ("etl", 512, 1), ("reports", 512, 1)]
    );
    // Names derive from the environment's stack name unless the file pins them.
    assert_eq!(prod.cluster.name, "prefect-prod");
    assert_eq!(prod.secret.name, "app-prod-prefect-api-key");
    assert_eq!(prod.iam.execution_role_name, "app-prod-task-execution-role");
    assert_eq!(prod.logs.group, "/prefect-ecs/app-prod/workers");
    assert_eq!(prod.namespace, "app-prod.prefect.local");
    assert_eq!(prod.network.vpc_name, "app-prod-vpc");
    let pools: Vec<&str> = prod.workers.iter().map(|w| w.work_pool.as_str()).collect();
    assert_eq!(pools, ["app-prod-w", "etl-pool", "app-prod-reports"]);
    let families: Vec<&str> = prod.workers.iter().map(|w| w.family.as_str()).collect();
    assert_eq!(families, ["app-prod-w", "app-prod-etl", "app-prod-reports"]);

    let dev = parse_in(FILE, Some("dev")).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(dev.name, "app-dev");
    assert_eq!(dev.network.nat, NatMode::None);
    assert_eq!(dev.network.zones.len(), 3);
    assert_eq!(dev.workers.len(), 2);
    assert!(!dev.protected);
    assert_eq!(dev.account_id, None);
    assert_eq!(dev.cluster.name, "app-dev-cluster");
    // Nothing the two environments create is named alike.
    assert_ne!(dev.workers[0].family, prod.workers[0].family);
    assert_ne!(dev.workers[0].work_pool, prod.workers[0].work_pool);
}

#[test]
fn an_environment_may_name_its_stack() {
    let file = format!("{FILE}\n[env.qa.stack]\nname = \"quality\"\n");
    let qa = parse_in(&file, Some("qa")).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(qa.name, "quality");
    assert_eq!(qa.cluster.name, "quality-cluster");
}

#[test]
fn a_file_without_environments_is_unchanged() {
    let base = FILE.split("[env.dev]").next().unwrap();
    let spec = parse_in(base, None).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(spec.name, "app");
    assert_eq!(spec.env, None);
    // The family is the worker's name, as it always was; unnamed pools follow the stack.
    assert_eq!(spec.workers[0].family, "w");
    assert_eq!(spec.workers[0].work_pool, "app-w");
}

#[test]
fn a_file_with_environments_has_no_default_one() {
    let err = parse_in(FILE, None).unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "this file defines environments (dev, prod): choose one with --env <name> (or \
          PREFECT_ECS_ENV); a file with environments has no default one"
        ]
    );
    let err = parse_in(FILE, Some("prdo")).unwrap_err();
    assert_eq!(
        messages(&err),
        ["no environment \"prdo\" in the file: it defines dev, prod; did you mean \"prod\"?"]
    );
    let base = FILE.split("[env.dev]").next().unwrap();
    let err = parse_in(base, Some("prod")).unwrap_err();
    assert!(
        messages(&err)[0].starts_with("--env prod was given, but the file defines no environments"),
        "{:?}",
        messages(&err)
    );
    let err = parse_in(FILE, Some("Prod")).unwrap_err();
    assert!(messages(&err)[0].starts_with("--env: invalid environment name \"Prod\""));
}

#[test]
fn a_problem_in_an_overlay_is_reported_at_the_overlay() {
    let file = FILE.replace(
        "cluster.name = \"prefect-prod\"",
        "cluster.nmae = \"prefect-prod\"",
    );
    let err = parse_in(&file, Some("prod")).unwrap_err();
    assert_eq!(
        messages(&err),
        ["unknown key \"nmae\" in [cluster]; did you mean \"name\"?"]
    );
    let line = file
        .lines()
        .position(|l| l.starts_with("cluster.nmae"))
        .unwrap()
        + 1;
    assert_eq!(first_line(&file, &err), line);
    // A wrong type in an overlay, likewise.
    let file = FILE.replace("desired_count = 2", "desired_count = \"two\"");
    let err = parse_in(&file, Some("prod")).unwrap_err();
    let line = file.lines().position(|l| l.contains("\"two\"")).unwrap() + 1;
    assert_eq!(first_line(&file, &err), line, "{:?}", messages(&err));
    // The other environment does not carry the problem.
    parse_in(&file, Some("dev")).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
}

#[test]
fn overlay_entries_name_what_they_change_and_names_stay_short() {
    let file = format!("{FILE}\n[[env.dev.worker]]\ndesired_count = 3\n");
    let err = parse_in(&file, Some("dev")).unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "env.dev.worker entry 0 has no name: an environment's [[worker]] names the entry it \
          changes (or adds) with name = \"…\""
        ]
    );
    let file = FILE.replace("name = \"app\"", "name = \"a-rather-long-stack-name\"");
    let file = format!("{file}\n[env.staging]\nlogs.retention_days = 7\n");
    let err = parse_in(&file, Some("staging")).unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "environment staging makes the stack name \"a-rather-long-stack-name-staging\", longer \
          than the 28 characters a stack name may have; shorten [stack] name or set \
          [env.staging.stack] name"
        ]
    );
    let file = FILE.replace("\"123456789012\"", "\"12345\"");
    let err = parse_in(&file, Some("prod")).unwrap_err();
    assert_eq!(
        messages(&err),
        ["account_id \"12345\" is not an AWS account id (twelve digits)"]
    );
}

#[test]
fn a_literal_key_in_any_environment_is_refused() {
    let file = FILE.replace(
        "network.nat = \"none\"",
        "network.nat = \"none\"\nprefect.api_key_env = \"pnu_abcdefghijklmnopqrstuvwxyz0123\"",
    );
    // Selecting the other environment does not hide it.
    let err = parse_in(&file, Some("prod")).unwrap_err();
    assert!(
        messages(&err)[0].contains("looks like a literal Prefect API key"),
        "{:?}",
        messages(&err)
    );
    assert!(!render_plain(&err).contains("pnu_abcdefghij"));
}

#[test]
fn environments_are_listed_without_validating() {
    let dir = std::env::temp_dir().join(format!("prefect-ecs-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.toml");
    std::fs::write(&path, FILE).unwrap();
    assert_eq!(environments(&path).unwrap(), ["dev", "prod"]);
    std::fs::write(&path, "[stack]\nname = \"x\"\n").unwrap();
    assert!(environments(&path).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `render` writes a spec that reads back as the same stack: for every environment of the
/// test file and every stack in `stacks/`, each of their environments.
#[test]
fn a_rendered_spec_parses_back_to_the_same_stack() {
    let env = env();
    let lookup = |n: &str| env.get(n).cloned();
    let mut specs: Vec<(String, Spec)> = ["dev", "prod"]
        .iter()
        .map(|e| {
            (
                format!("app.toml --env {e}"),
                parse_in(FILE, Some(e)).unwrap(),
            )
        })
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stacks");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for path in files {
        let envs = environments(&path).unwrap();
        let envs: Vec<Option<&str>> = match envs.is_empty() {
            true => vec![None],
            false => envs.iter().map(|e| Some(e.as_str())).collect(),
        };
        for e in envs {
            let spec = load_env(&path, &lookup, Some("us-east-1"), e)
                .unwrap_or_else(|err| panic!("{}", render_plain(&err)));
            specs.push((format!("{} {e:?}", path.display()), spec));
        }
    }
    assert!(specs.len() >= 8, "{}", specs.len());
    for (what, spec) in specs {
        let text = render::to_toml(&spec, &what);
        // Beside the original, so that a key file resolves alike.
        let back = parse_env(&text, Path::new("rendered.toml"), &lookup, None, None)
            .unwrap_or_else(|e| panic!("{what}:\n{text}\n{}", render_plain(&e)));
        let expected = Spec {
            env: None,
            ..spec.clone()
        };
        assert_eq!(back, expected, "{what}:\n{text}");
    }
}

#[test]
fn render_masks_credential_like_variables_and_escapes_dollars() {
    let file = FILE.replace(
        "name = \"etl\"\n",
        "name = \"etl\"\nenv = { DB_PASSWORD = \"hunter2\", PRICE = \"$$5\", MODE = \"${NOT_A_NUMBER}\" }\n",
    );
    let spec = parse_in(&file, Some("dev")).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    let text = render::to_toml(&spec, "app.toml");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("DB_PASSWORD = \"(masked)\""), "{text}");
    assert!(text.contains("PRICE = \"$$5\""), "{text}");
    assert!(text.contains("MODE = \"three\""), "{text}");
    assert!(text.starts_with("# app.toml --env dev,"), "{text}");
    assert!(text.contains("name = \"app-dev\""), "{text}");
}
