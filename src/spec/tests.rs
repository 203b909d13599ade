use std::collections::HashMap;
use std::path::Path;

use super::*;

const ACCOUNT: &str = "9b5d7c4e-1f2a-4b3c-8d9e-0a1b2c3d4e5f";
const WORKSPACE: &str = "3c2b1a09-8e7d-4c6b-9a5f-4e3d2c1b0a99";

fn env() -> HashMap<&'static str, String> {
    HashMap::from([
        ("PREFECT_ACCOUNT_ID", ACCOUNT.to_owned()),
        ("PREFECT_WORKSPACE_ID", WORKSPACE.to_owned()),
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
