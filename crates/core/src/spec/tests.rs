use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::validate::{SubstError, fargate_memory, substitute};
use super::*;

const ACCOUNT: &str = "9b5d7c4e-1f2a-4b3c-8d9e-0a1b2c3d4e5f";
const WORKSPACE: &str = "3c2b1a09-8e7d-4c6b-9a5f-4e3d2c1b0a99";

pub(super) fn env() -> HashMap<&'static str, String> {
    HashMap::from([
        ("PREFECT_ACCOUNT_ID", ACCOUNT.to_owned()),
        ("PREFECT_WORKSPACE_ID", WORKSPACE.to_owned()),
        (
            "PREFECT_API_URL",
            format!("https://api.prefect.cloud/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"),
        ),
        ("NOT_A_NUMBER", "three".to_owned()),
    ])
}

fn parse_str(source: &str) -> Result<Spec, SpecError> {
    parse_file(source.as_bytes(), "test.toml")
}

/// The bytes of a file at `path`, in us-east-1 with [`env`].
fn parse_file(bytes: &[u8], path: &str) -> Result<Spec, SpecError> {
    let env = env();
    parse_bytes(
        bytes,
        Path::new(path),
        &|name| env.get(name).cloned(),
        Some("us-east-1"),
    )
}

#[test]
fn stacks() {
    insta::glob!("../../../../stacks", "*.toml", |path| {
        let env = env();
        let name = Path::new("stacks").join(path.file_name().unwrap());
        let source = std::fs::read_to_string(path).unwrap();
        let load = |environment: Option<&str>| {
            parse_env(
                &source,
                &name,
                &|n| env.get(n).cloned(),
                Some("us-east-1"),
                environment,
            )
            .unwrap_or_else(|e| panic!("{}", render_plain(&e)))
        };
        // A file with environments: every one of them, by name.
        let environments = environments(path).unwrap();
        if environments.is_empty() {
            insta::assert_debug_snapshot!(load(None));
        } else {
            let specs: BTreeMap<&str, Spec> = environments
                .iter()
                .map(|e| (e.as_str(), load(Some(e))))
                .collect();
            insta::assert_debug_snapshot!(specs);
        }
    });
}

#[test]
fn invalid_specs() {
    insta::glob!("../../../../tests/specs/invalid", "*.toml", |path| {
        let env = env();
        let name = Path::new("tests/specs/invalid").join(path.file_name().unwrap());
        let bytes = std::fs::read(path).unwrap();
        let err = parse_bytes(&bytes, &name, &|n| env.get(n).cloned(), Some("us-east-1"))
            .expect_err("spec should be invalid");
        let rendered = render_plain(&err);
        // What the binary prints holds the same text (its theme may differ).
        let printed = render_hook(&err);
        for problem in problems(&err) {
            assert!(printed.contains(&problem.message), "{printed}");
        }
        insta::assert_snapshot!(rendered);
    });
}

const WORKER: &str = "[[worker]]\nname = \"w\"\nwork_pool = \"pool\"\n";

fn with_head(rest: &str) -> String {
    format!(
        "[stack]\nname = \"dev\"\n\n[prefect]\naccount_id = \"${{PREFECT_ACCOUNT_ID}}\"\n\
         workspace_id = \"${{PREFECT_WORKSPACE_ID}}\"\n\n{rest}"
    )
}

fn problems(err: &SpecError) -> &[Problem] {
    match err {
        SpecError::Invalid { problems, .. } => problems,
        SpecError::Io { .. } => panic!("unexpected i/o error"),
    }
}

fn messages(err: &SpecError) -> Vec<String> {
    problems(err).iter().map(|p| p.message.clone()).collect()
}

/// The report as the binary prints it: through [`report_handler`], its miette hook.
pub(super) fn render_hook(err: &SpecError) -> String {
    struct Hooked<'a>(&'a SpecError);
    impl std::fmt::Debug for Hooked<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            miette::ReportHandler::debug(&report_handler(), self.0, f)
        }
    }
    format!("{:?}", Hooked(err))
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
    let lookup = |name: &str| match name {
        "A_1" => Some("x".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let forbidden = ["SECRET".to_owned()];
    let sub = |text: &str| substitute(text, &lookup, &forbidden);
    assert_eq!(sub("${A_1}-${A_1}"), Ok("x-x".to_owned()));
    // Defaults, as a shell gives them: for an unset or empty variable only.
    assert_eq!(sub("${A_1:-dev}"), Ok("x".to_owned()));
    assert_eq!(sub("${B:-dev}"), Ok("dev".to_owned()));
    assert_eq!(sub("${EMPTY:-dev}"), Ok("dev".to_owned()));
    assert_eq!(sub("${EMPTY}"), Ok(String::new()));
    assert_eq!(sub("${B:-}"), Ok(String::new()));
    assert_eq!(
        sub("${SECRET:-x}"),
        Err(vec![SubstError::Forbidden("SECRET".to_owned())])
    );
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
fn numbers_and_booleans_come_from_variables_and_defaults() {
    let source = with_head(&format!(
        "[cluster]\ncontainer_insights = \"${{INSIGHTS:-true}}\"\n\n[network]\n\
         az_count = \"${{AZS}}\"\n\n{WORKER}desired_count = \"${{COUNT:-2}}\"\n\
         cpu = \"${{CPU}}\"\nmemory = \"${{MEMORY:-2048}}\"\n"
    ));
    let mut env = env();
    env.insert("AZS", "2".to_owned());
    env.insert("CPU", "1024".to_owned());
    let with = |env: &HashMap<&str, String>| {
        parse(
            &source,
            Path::new("t.toml"),
            &|n| env.get(n).cloned(),
            Some("us-east-1"),
        )
        .unwrap()
    };
    let spec = with(&env);
    assert!(spec.cluster.container_insights);
    assert_eq!(spec.network.zones.len(), 2);
    let w = &spec.workers[0];
    assert_eq!((w.desired_count, w.cpu, w.memory), (2, 1024, 2048));
    env.insert("COUNT", "0".to_owned());
    env.insert("INSIGHTS", "false".to_owned());
    let spec = with(&env);
    assert!(!spec.cluster.container_insights);
    assert_eq!(spec.workers[0].desired_count, 0);
}

#[test]
fn api_key_file_is_relative_to_the_spec() {
    let source = with_head(WORKER).replace(
        "[prefect]\n",
        "[prefect]\napi_key_file = \"secrets/key.txt\"\n",
    );
    let spec = parse_file(source.as_bytes(), "stacks/dev.toml").unwrap();
    assert_eq!(
        spec.prefect.credential.unwrap().source,
        ApiKeySource::File("stacks/secrets/key.txt".into())
    );
}

#[test]
fn credentials_in_the_api_url_are_refused_and_never_shown() {
    let password = "hunter2-in-the-url";
    let env = |k: &str| match k {
        "PREFECT_API_URL" => Some(format!("https://ops:{password}@prefect.internal/api")),
        // Wrong in another way too: that message must not quote it either.
        "FTP_URL" => Some(format!("ftp://ops:{password}@prefect.internal/api")),
        _ => None,
    };
    let head = "[stack]\nname = \"dev\"\n\n[prefect]\n";
    for prefect in [
        "api_url = \"${PREFECT_API_URL}\"\n".to_owned(),
        "api_url = \"${FTP_URL}\"\n".to_owned(),
        format!("api_url = \"https://ops:{password}@prefect.internal/api\"\n"),
        format!("api_url = \"ftp://ops:{password}@prefect.internal/api\"\n"),
    ] {
        let source = format!("{head}{prefect}\n{WORKER}");
        let err = parse(&source, Path::new("test.toml"), &env, Some("us-east-1")).unwrap_err();
        let rendered = render_plain(&err);
        assert!(
            rendered.contains("api_url must not hold credentials")
                && rendered.contains("test.toml:5:11"),
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

/// Every (table, key, type) of the schema, with its table's header.
fn schema_keys() -> Vec<(String, &'static str, schema::Type)> {
    let mut out = Vec::new();
    for (table, ty) in schema::ROOT {
        out.push((String::new(), *table, *ty));
        if let schema::Type::Table(fields) | schema::Type::Tables(fields, _) = ty {
            for (key, ty) in *fields {
                out.push((table.to_string(), *key, *ty));
            }
        }
    }
    out
}

fn one_key(table: &str, key: &str, value: &str) -> (String, String) {
    match table {
        "" => (format!("{key} = {value}\n"), key.to_string()),
        "worker" | "work_pool" => (
            format!("[[{table}]]\n{key} = {value}\n"),
            format!("{table}[0].{key}"),
        ),
        _ => (
            format!("[{table}]\n{key} = {value}\n"),
            format!("{table}.{key}"),
        ),
    }
}

#[test]
fn the_schema_and_the_raw_structs_agree() {
    use schema::Type::*;
    for (table, key, ty) in schema_keys() {
        let value = match ty {
            Text => "\"x\"",
            Number => "1",
            Flag => "true",
            Texts(_) => "[\"x\"]",
            TextMap => "{ A = \"x\" }",
            Table(_) => "{}",
            Tables(..) => "[{}]",
        };
        let (source, path) = one_key(&table, key, value);
        let SpecError::Invalid { problems, .. } = parse_str(&source).unwrap_err() else {
            panic!("unexpected i/o error");
        };
        assert!(
            !problems.iter().any(|p| p.message.starts_with("unknown key")
                || p.message.contains("invalid type")),
            "{path}: {:?}",
            problems.iter().map(|p| &p.message).collect::<Vec<_>>()
        );
        assert!(schema::keys(&table).unwrap().contains(&key), "{path}");
    }
}

#[test]
fn a_value_of_the_wrong_type_is_reported_at_its_key_in_plain_words() {
    // `[[1]]` fits no key's type.
    for (table, key, _) in schema_keys() {
        let (source, path) = one_key(&table, key, "[[1]]");
        let SpecError::Invalid { problems, .. } = parse_str(&source).unwrap_err() else {
            panic!("unexpected i/o error");
        };
        let typed: Vec<_> = problems
            .iter()
            .filter(|p| p.message.starts_with("expected"))
            .collect();
        assert_eq!(typed.len(), 1, "{path}: {problems:?}");
        assert!(
            typed[0].path.starts_with(&path),
            "{path}: {}",
            typed[0].path
        );
        assert!(!typed[0].message.contains("invalid type"), "{path}");
    }
}

#[test]
fn io_error_names_the_file() {
    let err = load(Path::new("no/such/spec.toml"), &|_| None, None).unwrap_err();
    assert!(render_plain(&err).contains("cannot read stack spec no/such/spec.toml"));
}

/// Issue 10, defect 6 and beyond: no input may panic. The example stacks, mutated at random —
/// values swapped for awkward ones (huge numbers, empty and odd strings, long lists of zones
/// and CIDRs), keys dropped, the text itself cut and spliced — must always come back from
/// `parse` as a spec or a report. `PREFECT_ECS_FUZZ_CASES` sets the number of cases
/// (`scripts/fuzz` runs many more than CI).
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn stacks() -> Vec<String> {
        ["dev.toml", "minimal.toml", "prod.toml"]
            .iter()
            .map(|f| {
                std::fs::read_to_string(
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../stacks")
                        .join(f),
                )
                .unwrap()
            })
            .collect()
    }

    fn cases() -> u32 {
        std::env::var("PREFECT_ECS_FUZZ_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256)
    }

    fn strings(items: Vec<String>) -> toml::Value {
        toml::Value::Array(items.into_iter().map(toml::Value::String).collect())
    }

    /// What the network keys take: zone and CIDR lists of any length, counts, anything.
    fn network_value() -> impl Strategy<Value = toml::Value> {
        prop_oneof![
            value(),
            prop::collection::vec("us-east-1[a-j]", 0..12).prop_map(strings),
            prop::collection::vec("10\\.[0-9]{1,2}\\.[0-9]{1,3}\\.0/(1[6-9]|2[0-9])", 0..12)
                .prop_map(strings),
            (-2i64..12).prop_map(toml::Value::Integer),
        ]
    }

    /// Awkward values of every TOML type the spec uses.
    fn value() -> impl Strategy<Value = toml::Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(toml::Value::Integer),
            (0i64..70_000).prop_map(toml::Value::Integer),
            any::<bool>().prop_map(toml::Value::Boolean),
            prop_oneof![
                Just(String::new()),
                Just("10.0.0.0/16".to_owned()),
                Just("10.0.0.0/8".to_owned()),
                Just("0.0.0.0/0".to_owned()),
                Just("10.0.0.1/33".to_owned()),
                Just("us-east-1z".to_owned()),
                Just("${PREFECT_ACCOUNT_ID}".to_owned()),
                Just("${UNSET}".to_owned()),
                Just("$".to_owned()),
                Just("pnu_abcdefghijklmnopqrstuvwxyz0123456789".to_owned()),
                Just("http://u:p@h/api".to_owned()),
                Just("none".to_owned()),
                Just("per-az".to_owned()),
                "\\PC{0,40}",
            ]
            .prop_map(toml::Value::String),
        ];
        let zones = prop::collection::vec("us-east-1[a-j]", 0..12).prop_map(strings);
        let cidrs = prop::collection::vec(
            "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.0/(1[0-9]|2[0-9]|3[0-3])",
            0..12,
        )
        .prop_map(strings);
        let leaf = prop_oneof![4 => leaf, 1 => zones, 1 => cidrs];
        leaf.prop_recursive(2, 24, 12, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..12).prop_map(toml::Value::Array),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                    .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
            ]
        })
    }

    /// Every path to a value in `v`, as keys and indices.
    fn paths(v: &toml::Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            toml::Value::Table(t) => {
                for (k, x) in t {
                    let mut p = at.clone();
                    p.push(k.clone());
                    out.push(p.clone());
                    paths(x, p, out);
                }
            }
            toml::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let mut p = at.clone();
                    p.push(i.to_string());
                    out.push(p.clone());
                    paths(x, p, out);
                }
            }
            _ => {}
        }
    }

    /// Replace (or with `None` remove) the value at `path`.
    fn set(v: &mut toml::Value, path: &[String], new: Option<toml::Value>) {
        let (last, init) = path.split_last().unwrap();
        let mut at = v;
        for p in init {
            at = match at {
                toml::Value::Table(t) => t.get_mut(p).unwrap(),
                toml::Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
                _ => return,
            };
        }
        match (at, new) {
            (toml::Value::Table(t), Some(n)) => {
                t.insert(last.clone(), n);
            }
            (toml::Value::Table(t), None) => {
                t.remove(last);
            }
            (toml::Value::Array(a), Some(n)) => a[last.parse::<usize>().unwrap()] = n,
            (toml::Value::Array(a), None) => {
                a.remove(last.parse::<usize>().unwrap());
            }
            _ => {}
        }
    }

    fn check(source: &str) {
        let env = env();
        // A spec or a report, and a report renders: neither may panic.
        if let Err(e) = parse(
            source,
            Path::new("fuzz.toml"),
            &|n| env.get(n).cloned(),
            Some("us-east-1"),
        ) {
            let _ = render_plain(&e);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn mutated_values_and_keys(
            stack in 0usize..3,
            edits in prop::collection::vec((any::<prop::sample::Index>(), prop::option::weighted(0.8, value())), 0..5),
            added in prop::collection::vec((
                prop::sample::select(vec!["stack", "prefect", "network", "network", "network", "secret", "iam", "logs", "cluster"]),
                prop::sample::select(vec![
                    "availability_zones", "az_count", "cidr", "nat", "public_subnets",
                    "private_subnets", "name", "region", "tags", "retention_days",
                    "recovery_window_days", "api_url", "api_key_file", "auth_string_env",
                ]),
                value(),
            ), 0..3),
        ) {
            let mut doc: toml::Value = toml::from_str(&stacks()[stack]).unwrap();
            for (pick, new) in edits {
                let mut all = Vec::new();
                paths(&doc, Vec::new(), &mut all);
                if all.is_empty() {
                    break;
                }
                let path = all[pick.index(all.len())].clone();
                set(&mut doc, &path, new);
            }
            // Keys the stack does not set, added (a mutation can only change what is there).
            for (table, key, new) in added {
                if let toml::Value::Table(root) = &mut doc {
                    let t = root
                        .entry(table)
                        .or_insert_with(|| toml::Value::Table(Default::default()));
                    if let toml::Value::Table(t) = t {
                        t.insert(key.to_owned(), new);
                    }
                }
            }
            if let Ok(text) = toml::to_string(&doc) {
                check(&text);
            }
        }

        /// The network table's lists and counts together: zones, subnets, CIDR, az_count.
        #[test]
        fn network_lists(
            stack in 0usize..3,
            keys in prop::collection::vec((
                prop::sample::select(vec![
                    "availability_zones", "public_subnets", "private_subnets", "az_count", "cidr", "nat",
                ]),
                prop::option::weighted(0.85, network_value()),
            ), 1..6),
        ) {
            let mut doc: toml::Value = toml::from_str(&stacks()[stack]).unwrap();
            if let toml::Value::Table(root) = &mut doc {
                let network = root
                    .entry("network")
                    .or_insert_with(|| toml::Value::Table(Default::default()));
                if let toml::Value::Table(t) = network {
                    for (key, new) in keys {
                        match new {
                            Some(v) => t.insert(key.to_owned(), v),
                            None => t.remove(key),
                        };
                    }
                }
            }
            if let Ok(text) = toml::to_string(&doc) {
                check(&text);
            }
        }

        #[test]
        fn spliced_text(
            stack in 0usize..3,
            cut in any::<prop::sample::Index>(),
            len in 0usize..40,
            insert in "\\PC{0,24}",
        ) {
            let text = &stacks()[stack];
            let chars: Vec<char> = text.chars().collect();
            let at = cut.index(chars.len());
            let end = (at + len).min(chars.len());
            let mutated: String = chars[..at]
                .iter()
                .chain(insert.chars().collect::<Vec<_>>().iter())
                .chain(&chars[end..])
                .collect();
            check(&mutated);
        }
    }
}

#[test]
fn a_prefect_2_image_is_accepted_only_with_a_prefect_aws_of_the_users_own() {
    let worker = |extra: &str| {
        with_head(&format!(
            "[[worker]]\nname = \"w\"\nwork_pool = \"pool\"\nimage = \"prefecthq/prefect:2-latest\"\n{extra}"
        ))
    };
    let err = parse_str(&worker("")).unwrap_err();
    assert!(
        messages(&err)[0].contains("is Prefect 2"),
        "{:?}",
        messages(&err)
    );
    parse_str(&worker(
        "env = { EXTRA_PIP_PACKAGES = \"prefect-aws==0.4.19\" }\n",
    ))
    .unwrap();
    // A Prefect 3 tag, another repository, or a registry's own copy is not this rule's.
    for image in ["prefecthq/prefect:3-latest", "myorg/prefect:2-latest"] {
        parse_str(&with_head(&format!(
            "[[worker]]\nname = \"w\"\nwork_pool = \"pool\"\nimage = \"{image}\"\n"
        )))
        .unwrap();
    }
}

/// Issue 16: a problem past column 65,535 panicked inside miette's renderer.
#[test]
fn a_problem_on_a_very_long_line_is_located_without_a_snippet() {
    let long = "x".repeat(70_000);
    let source = with_head(&format!(
        "{WORKER}env = {{ NOTE = \"{long}\", COUNT = 1 }}\n"
    ));
    let err = parse_str(&source).unwrap_err();
    for rendered in [render_plain(&err), render_hook(&err)] {
        assert!(
            rendered.contains("test.toml:11:70028: worker[0].env.COUNT: expected a string"),
            "{}",
            &rendered[..rendered.len().min(2000)]
        );
        assert!(!rendered.contains(&long[..MAX_SNIPPET_LINE]));
    }
    // A short line next to a long one: its snippet would show the long one as context.
    let source = with_head(&format!(
        "{WORKER}env = {{ NOTE = \"{long}\" }}\ncpu = 100\n"
    ));
    let rendered = render_plain(&parse_str(&source).unwrap_err());
    assert!(
        rendered.contains("test.toml:12:7: worker[0].cpu: cpu = 100 is not a Fargate size"),
        "{}",
        &rendered[..rendered.len().min(2000)]
    );
}

/// Issue 16: ~1,600 unclosed inline tables overflowed the stack inside the TOML parser (and
/// a test thread's stack is smaller than the binary's main thread).
#[test]
fn nesting_deeper_than_a_spec_needs_is_refused_where_it_goes_too_deep() {
    let source = format!("[stack]\n{}", "tags = { [stack]\n".repeat(1600));
    let err = parse_str(&source).unwrap_err();
    let rendered = render_plain(&err);
    assert_eq!(
        messages(&err),
        [format!(
            "arrays and inline tables nested more than {MAX_DEPTH} deep (a stack spec needs at \
             most 3); is a closing bracket missing before this one?"
        )]
    );
    // Each line leaves one inline table open: the 20th's `[` opens the 21st level.
    assert!(rendered.contains("test.toml:21:10]"), "{rendered}");
    // Strings and comments hold brackets that nest nothing.
    let source = with_head(&format!(
        "# {}\n{WORKER}env = {{ A = \"{}\", B = '''{}''' }}\n",
        "[".repeat(50),
        "{".repeat(50),
        "[".repeat(50)
    ));
    parse_str(&source).unwrap();
}

#[test]
fn invalid_utf8_is_reported_at_its_line_and_byte() {
    let mut bytes = with_head(WORKER).into_bytes();
    bytes.splice(10..10, [0xff, 0xfe]);
    let err = parse_file(&bytes, "test.toml").unwrap_err();
    let rendered = render_plain(&err);
    assert_eq!(
        messages(&err),
        [
            "the file is not valid UTF-8: 0xff 0xfe at line 2, byte 3 of the line; save the file \
          as UTF-8"
        ]
    );
    assert!(rendered.contains("test.toml:2:3]"), "{rendered}");
}

/// Issue 16: 2,500 references to one unset variable took 42 s and printed 113 MB.
#[test]
fn one_problem_at_many_places_is_reported_once() {
    let refs: String = (0..2500)
        .map(|i| format!("V{i} = \"${{UNSET_TEAM}}\"\n"))
        .collect();
    let source = with_head(&format!("{WORKER}[worker.env]\n{refs}"));
    let started = std::time::Instant::now();
    let err = parse_str(&source).unwrap_err();
    let rendered = render_plain(&err);
    let elapsed = started.elapsed();
    assert_eq!(messages(&err).len(), 1, "{rendered}");
    assert!(
        rendered.contains("environment variable UNSET_TEAM is not set")
            && rendered.contains("also at worker[0].env.V1 (line 13)")
            && rendered.contains("and 2494 more places")
            && rendered.contains("test.toml:12:6]"),
        "{rendered}"
    );
    assert!(rendered.len() < 2000, "{rendered}");
    // Generous for a debug build on a shared machine; quadratic work took seconds.
    assert!(elapsed.as_secs() < 2, "{elapsed:?}");
}

#[test]
fn the_first_problems_are_shown_and_the_rest_counted() {
    let workers: String = (0..60)
        .map(|i| format!("[[worker]]\nname = \"w{i}\"\nwork_pool = \"pool\"\ncpu = {i}\n"))
        .collect();
    let err = parse_str(&with_head(&workers)).unwrap_err();
    let rendered = render_plain(&err);
    let shown = messages(&err);
    assert_eq!(shown.len(), MAX_SHOWN + 1);
    assert_eq!(
        shown[MAX_SHOWN - 1],
        format!(
            "cpu = {} is not a Fargate size (allowed: 256, 512, 1024, 2048, 4096, 8192, 16384)",
            MAX_SHOWN - 1
        )
    );
    assert_eq!(
        shown[MAX_SHOWN],
        "and 10 more problems, not shown: fix the ones above and validate again"
    );
    assert!(rendered.contains("is invalid (60 problems)"), "{rendered}");
}

/// Issue 16: time grew with problems × file size. Each of these took seconds to minutes.
#[test]
fn large_inputs_are_validated_in_linear_time() {
    let cases = [
        // 50,000 values of the wrong type in one list (a removal per item was quadratic).
        format!(
            "[network]\navailability_zones = [{}]\n{WORKER}",
            vec!["1"; 50_000].join(",")
        ),
        // 10,000 literal API keys (masking them one at a time from the start was quadratic).
        format!(
            "{WORKER}env = {{ A = \"{}\" }}\n",
            "pnu_abcdefghijklmnopqrstuvwxyz ".repeat(10_000)
        ),
        // 20,000 listed subnets (every pair compared for overlap).
        format!(
            "[network]\npublic_subnets = [{}]\n{WORKER}",
            vec!["\"10.0.0.0/24\""; 20_000].join(",")
        ),
        // 4,000 unknown keys in one table (each located by a scan of the table).
        format!(
            "{WORKER}{}",
            (0..4000)
                .map(|i| format!("nmae{i} = 1\n"))
                .collect::<String>()
        ),
    ];
    for source in cases {
        let source = with_head(&source);
        let started = std::time::Instant::now();
        let rendered = render_plain(&parse_str(&source).unwrap_err());
        let elapsed = started.elapsed();
        // Generous for a debug build on a shared machine; the quadratic work took 20 s and more.
        assert!(elapsed.as_secs() < 5, "{elapsed:?}: {}", &rendered[..300]);
        assert!(rendered.len() < 20_000, "{}", rendered.len());
    }
}

/// Issue 16: 17 listed zones went on to subnet carving (eight blocks a tier) and panicked.
#[test]
fn a_zone_count_out_of_range_carves_no_subnets() {
    let zones: Vec<String> = (b'a'..b'a' + 17)
        .map(|l| format!("\"us-east-1{}\"", l as char))
        .collect();
    for network in [
        format!(
            "cidr = \"10.1.2.0/24\"\navailability_zones = [{}]\n",
            zones.join(", ")
        ),
        format!(
            "availability_zones = [{}]\npublic_subnets = [\"10.0.0.0/24\"]\n",
            zones.join(", ")
        ),
    ] {
        let err = parse_str(&with_head(&format!("[network]\n{network}\n{WORKER}"))).unwrap_err();
        // The zone count alone: subnets per zone would only repeat it.
        assert_eq!(
            messages(&err),
            ["availability_zones lists 17 zones; list 1 to 6"],
            "{network}"
        );
    }
}
