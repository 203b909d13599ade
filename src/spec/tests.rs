use std::collections::HashMap;
use std::path::Path;

use super::validate::{SubstError, fargate_memory, substitute};
use super::*;

const ACCOUNT: &str = "9b5d7c4e-1f2a-4b3c-8d9e-0a1b2c3d4e5f";
const WORKSPACE: &str = "3c2b1a09-8e7d-4c6b-9a5f-4e3d2c1b0a99";

fn env() -> HashMap<&'static str, String> {
    HashMap::from([
        ("PREFECT_ACCOUNT_ID", ACCOUNT.to_owned()),
        ("PREFECT_WORKSPACE_ID", WORKSPACE.to_owned()),
        (
            "PREFECT_API_URL",
            format!("https://api.prefect.cloud/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"),
        ),
    ])
}

fn parse_str(source: &str) -> Result<Spec, SpecError> {
    let env = env();
    parse(
        source,
        Path::new("test.toml"),
        &|name| env.get(name).cloned(),
        Some("us-east-1"),
    )
}

#[test]
fn stacks() {
    insta::glob!("../../stacks", "*.toml", |path| {
        let env = env();
        let name = Path::new("stacks").join(path.file_name().unwrap());
        let source = std::fs::read_to_string(path).unwrap();
        let spec = parse(&source, &name, &|n| env.get(n).cloned(), Some("us-east-1"))
            .unwrap_or_else(|e| panic!("{}", render_plain(&e)));
        insta::assert_debug_snapshot!(spec);
    });
}

#[test]
fn invalid_specs() {
    insta::glob!("../../tests/specs/invalid", "*.toml", |path| {
        let env = env();
        let name = Path::new("tests/specs/invalid").join(path.file_name().unwrap());
        let source = std::fs::read_to_string(path).unwrap();
        let err = parse(&source, &name, &|n| env.get(n).cloned(), Some("us-east-1"))
            .expect_err("spec should be invalid");
        insta::assert_snapshot!(render_plain(&err));
    });
}

const WORKER: &str = "[[worker]]\nname = \"w\"\nwork_pool = \"pool\"\n";

fn with_head(rest: &str) -> String {
    format!(
        "[stack]\nname = \"dev\"\n\n[prefect]\naccount_id = \"${{PREFECT_ACCOUNT_ID}}\"\n\
         workspace_id = \"${{PREFECT_WORKSPACE_ID}}\"\n\n{rest}"
    )
}

fn messages(err: &SpecError) -> Vec<String> {
    match err {
        SpecError::Invalid { problems, .. } => problems.iter().map(|p| p.message.clone()).collect(),
        SpecError::Io { .. } => panic!("unexpected i/o error"),
    }
}

#[test]
fn carves_subnets_from_the_vpc_cidr() {
    let spec = parse_str(&with_head(&format!(
        "[network]\ncidr = \"172.16.0.0/20\"\naz_count = 2\n\n{WORKER}"
    )))
    .unwrap();
    let zones: Vec<(String, String, String)> = spec
        .network
        .zones
        .iter()
        .map(|z| {
            (
                z.az.clone(),
                z.public_cidr.to_string(),
                z.private_cidr.to_string(),
            )
        })
        .collect();
    assert_eq!(
        zones,
        [
            (
                "us-east-1a".into(),
                "172.16.0.0/24".into(),
                "172.16.8.0/24".into()
            ),
            (
                "us-east-1b".into(),
                "172.16.1.0/24".into(),
                "172.16.9.0/24".into()
            ),
        ]
    );
}

#[test]
fn carving_stops_at_slash_28() {
    let spec = parse_str(&with_head(&format!(
        "[network]\ncidr = \"10.1.2.0/24\"\naz_count = 6\n\n{WORKER}"
    )))
    .unwrap();
    let last = spec.network.zones.last().unwrap();
    assert_eq!(last.public_cidr.to_string(), "10.1.2.80/28");
    assert_eq!(last.private_cidr.to_string(), "10.1.2.208/28");
}

#[test]
fn spec_region_wins_over_the_region_argument() {
    let source =
        with_head(WORKER).replace("name = \"dev\"", "name = \"dev\"\nregion = \"eu-west-3\"");
    let spec = parse_str(&source).unwrap();
    assert_eq!(spec.network.zones[0].az, "eu-west-3a");
}

#[test]
fn zones_need_a_region() {
    let env = env();
    let err = parse(
        &with_head(WORKER),
        Path::new("t.toml"),
        &|n| env.get(n).cloned(),
        None,
    )
    .unwrap_err();
    assert!(messages(&err)[0].starts_with("cannot name the availability zones: no region"));
}

#[test]
fn fargate_memory_table() {
    assert_eq!(fargate_memory(256), Some(vec![512, 1024, 2048]));
    assert_eq!(fargate_memory(512), Some(vec![1024, 2048, 3072, 4096]));
    assert_eq!(fargate_memory(1024).unwrap().len(), 7);
    assert_eq!(fargate_memory(2048).unwrap().last(), Some(&16384));
    assert_eq!(fargate_memory(4096).unwrap().len(), 23);
    assert_eq!(fargate_memory(8192).unwrap()[..2], [16384, 20480]);
    assert_eq!(fargate_memory(16384).unwrap().last(), Some(&122880));
    assert_eq!(fargate_memory(300), None);
}

#[test]
fn substitution() {
    let lookup = |name: &str| (name == "A_1").then(|| "x".to_owned());
    let forbidden = ["SECRET".to_owned()];
    let sub = |text: &str| substitute(text, &lookup, &forbidden);
    assert_eq!(sub("${A_1}-${A_1}"), Ok("x-x".to_owned()));
    assert_eq!(
        sub("cost: $$5, $A_1, $"),
        Ok("cost: $5, $A_1, $".to_owned())
    );
    assert_eq!(sub("$${A_1}"), Ok("${A_1}".to_owned()));
    assert_eq!(sub("${B}"), Err(vec![SubstError::Unset("B".to_owned())]));
    assert_eq!(
        sub("${SECRET}"),
        Err(vec![SubstError::Forbidden("SECRET".to_owned())])
    );
    assert_eq!(sub("${1A}"), Err(vec![SubstError::Malformed]));
    assert_eq!(sub("${A_1"), Err(vec![SubstError::Malformed]));
}

#[test]
fn env_values_are_substituted_everywhere() {
    let source = with_head(&format!(
        "[cluster]\nname = \"${{PREFECT_WORKSPACE_ID}}\"\n\n{WORKER}env = {{ A = \"$${{HOME}}\" }}\n"
    ));
    let spec = parse_str(&source).unwrap();
    assert_eq!(spec.cluster.name, WORKSPACE);
    assert_eq!(spec.workers[0].env["A"], "${HOME}");
    assert_eq!(spec.prefect.cloud.unwrap().account_id, ACCOUNT);
}

#[test]
fn api_key_file_is_relative_to_the_spec() {
    let env = env();
    let source = with_head(WORKER).replace(
        "[prefect]\n",
        "[prefect]\napi_key_file = \"secrets/key.txt\"\n",
    );
    let spec = parse(
        &source,
        Path::new("stacks/dev.toml"),
        &|n| env.get(n).cloned(),
        Some("us-east-1"),
    )
    .unwrap();
    assert_eq!(
        spec.prefect.credential.unwrap().source,
        ApiKeySource::File("stacks/secrets/key.txt".into())
    );
}

#[test]
fn credentials_in_the_api_url_are_refused_and_never_shown() {
    let password = "hunter2-in-the-url";
    let env = |k: &str| {
        (k == "PREFECT_API_URL").then(|| format!("https://ops:{password}@prefect.internal/api"))
    };
    let head = "[stack]\nname = \"dev\"\n\n[prefect]\n";
    for prefect in [
        "api_url = \"${PREFECT_API_URL}\"\n".to_owned(),
        format!("api_url = \"https://ops:{password}@prefect.internal/api\"\n"),
    ] {
        let source = format!("{head}{prefect}\n{WORKER}");
        let err = parse(&source, Path::new("test.toml"), &env, Some("us-east-1")).unwrap_err();
        let rendered = render_plain(&err);
        assert!(
            rendered.contains("api_url must not hold credentials"),
            "{rendered}"
        );
        assert!(!rendered.contains(password), "{rendered}");
        assert!(!format!("{err:?}").contains(password));
    }
}

#[test]
fn api_key_never_appears_in_the_rendered_error() {
    let key = "pnu_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
    // The key sits next to other problems (whose snippets show nearby lines) and in a value
    // toml's own type error quotes.
    for rest in [
        format!(
            "[[worker]]\nname = \"w\"\nwork_pool = \"{key}\"\nenv = {{ T = \"{key}\", PREFECT_API_URL = \"x\" }}\ncpuu = 1\n"
        ),
        format!("[[worker]]\nname = \"w\"\nwork_pool = \"pool\"\ncpu = \"{key}\"\n"),
    ] {
        let err = parse_str(&with_head(&rest)).unwrap_err();
        let rendered = render_plain(&err);
        assert!(!rendered.contains(&key[4..]), "{rendered}");
        assert!(!format!("{err:?}").contains(&key[4..]));
    }
    let err = parse_str(&with_head(&format!(
        "{WORKER}env = {{ TOKEN = \"{key}\" }}\n"
    )))
    .unwrap_err();
    let rendered = render_plain(&err);
    assert!(
        rendered
            .contains("test.toml:11:17: worker[0].env.TOKEN looks like a literal Prefect API key")
    );
    assert!(
        !rendered.contains("\u{256d}"),
        "no snippet expected:\n{rendered}"
    );
}

#[test]
fn every_key_listed_in_hints_is_accepted() {
    // `[[1]]` fits no field's type: a known key fails deserialization, an unknown one is ignored.
    for (table, keys) in raw::KEYS {
        for key in keys.split(", ") {
            let (source, path) = match *table {
                "" => (format!("{key} = [[1]]\n"), key.to_string()),
                "worker" | "work_pool" => (
                    format!("[[{table}]]\n{key} = [[1]]\n"),
                    format!("{table}[0].{key}"),
                ),
                _ => (
                    format!("[{table}]\n{key} = [[1]]\n"),
                    format!("{table}.{key}"),
                ),
            };
            let SpecError::Invalid { problems, .. } = parse_str(&source).unwrap_err() else {
                panic!("unexpected i/o error");
            };
            assert_eq!(problems.len(), 1, "{path}");
            assert!(problems[0].message.starts_with("invalid type"), "{path}");
            assert!(
                problems[0].path.starts_with(&path),
                "{path}: {}",
                problems[0].path
            );
        }
    }
}

#[test]
fn io_error_names_the_file() {
    let err = load(Path::new("no/such/spec.toml"), &|_| None, None).unwrap_err();
    assert!(render_plain(&err).contains("cannot read stack spec no/such/spec.toml"));
}
