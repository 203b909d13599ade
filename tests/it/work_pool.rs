//! The Prefect work pool as a resource of the stack, against a real Prefect server: edits
//! made through Prefect's API are drift, destroy deletes only pools prefect-ecs created, a
//! same-named pool is refused unless adopted, and an adopted pool outlives the stack.

use serde_json::json;

use crate::support::TestStack;
use crate::support::aws::{
    Aws, cluster, ecs_service, leftovers, secret_arn, secret_value, task_definition,
};
use crate::support::plan::{self, Action};
use crate::support::prefect::{default_of, prefect, prefect_with_auth};

#[tokio::test(flavor = "multi_thread")]
async fn a_template_edited_in_prefect_is_drift_and_apply_puts_it_back() {
    let aws = Aws::new().await;
    let stack = TestStack::new("pool-drift");
    let pool = stack.workers[0].work_pool.clone();
    let address = format!("prefect_work_pool.{pool}");
    stack.apply().assert_ok();
    let (ecs_cluster, _) = cluster(&aws, &stack.cluster()).await.expect("cluster");
    let cluster_arn = ecs_cluster.cluster_arn().expect("ARN").to_owned();
    // Flow runs get the API key as a reference to the stack's secret, never in plain text.
    let applied = prefect().pool(&pool).expect("pool");
    assert_eq!(
        default_of(&applied, "prefect_api_key_secret_arn"),
        &json!(secret_arn(&aws, &stack.secret_name()).await)
    );
    assert_eq!(
        applied["base_job_template"]["job_configuration"]["prefect_api_key_secret_arn"],
        json!("{{ prefect_api_key_secret_arn }}")
    );

    // Someone points the pool at another cluster in the UI.
    let mut template = prefect().pool(&pool).expect("pool")["base_job_template"].clone();
    template["variables"]["properties"]["cluster"]["default"] = json!("someone-elses-cluster");
    prefect().patch_pool(&pool, json!({"base_job_template": template}));

    let out = stack.plan().assert_ok();
    assert_eq!(
        plan::changes(&out.stdout).get(&address),
        Some(&Action::Update),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("~ {address}  # changed outside prefect-ecs")),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "base_job_template.variables.properties.cluster.default: \"someone-elses-cluster\" → \"{cluster_arn}\""
        )),
        "{out}"
    );

    stack.apply().assert_ok();
    let repaired = prefect().pool(&pool).expect("pool");
    assert_eq!(default_of(&repaired, "cluster"), &json!(cluster_arn));
    assert!(plan::is_converged(&stack.plan().assert_ok().stdout));

    stack.destroy().assert_ok();
    assert!(prefect().pool(&pool).is_none(), "destroy left the pool");
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_made_by_hand_is_refused_unless_adopted_and_then_kept_by_destroy() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("pool-adopt");
    let pool = stack.workers[0].work_pool.clone();
    prefect().create_pool(&pool, "ecs", prefect().ecs_template());

    let out = stack.plan().assert_failed();
    assert!(
        out.stderr.contains(&format!("prefect_work_pool.{pool}"))
            && out.stderr.contains("was not created by prefect-ecs")
            && out.stderr.contains("adopt = true"),
        "{out}"
    );
    let out = stack.apply().assert_failed();
    assert!(
        out.stderr.contains("was not created by prefect-ecs"),
        "{out}"
    );
    assert_eq!(
        leftovers(&aws, &stack).await,
        Vec::<String>::new(),
        "a refused apply created AWS resources"
    );
    assert_eq!(
        prefect().pool(&pool).expect("pool")["description"],
        "made by hand",
        "the refused pool was modified"
    );

    stack.extra = format!("[[work_pool]]\nname = \"{pool}\"\nadopt = true\n");
    let out = stack.plan().assert_ok();
    assert_eq!(
        plan::changes(&out.stdout).get(&format!("prefect_work_pool.{pool}")),
        Some(&Action::Update),
        "{out}"
    );
    stack.apply().assert_ok();
    let (ecs_cluster, _) = cluster(&aws, &stack.cluster()).await.expect("cluster");
    let adopted = prefect().pool(&pool).expect("pool");
    assert_eq!(
        default_of(&adopted, "cluster"),
        &json!(ecs_cluster.cluster_arn().expect("ARN"))
    );
    assert!(plan::is_converged(&stack.plan().assert_ok().stdout));

    // Adoption is for good: without `adopt = true` the pool stays managed and still not
    // prefect-ecs' to delete.
    stack.extra = String::new();
    stack.apply().assert_ok();

    let out = stack.destroy().assert_ok();
    assert!(
        !out.stdout
            .contains(&format!("prefect_work_pool.{pool}: destroy")),
        "{out}"
    );
    assert!(
        prefect().pool(&pool).is_some(),
        "destroy deleted an adopted pool"
    );
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
    prefect().delete_pool(&pool);

    // A hand-made pool of another type cannot become an ecs pool without deleting it: refused.
    prefect().create_pool(&pool, "process", json!({}));
    stack.extra = format!("[[work_pool]]\nname = \"{pool}\"\nadopt = true\n");
    let out = stack.plan().assert_failed();
    assert!(out.stderr.contains("is of type process, not ecs"), "{out}");
    assert_eq!(prefect().pool(&pool).expect("pool")["type"], "process");
    prefect().delete_pool(&pool);
}

/// Prefect Cloud refuses an `ecs` pool on a plan without hybrid pools. No Cloud account is
/// reachable here: a stand-in answers the three calls apply makes before creating the pool the
/// way Cloud does (its template from the real server, no pools, then 403 with a reason).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_pool_type_stops_apply_before_any_aws_resource() {
    let aws = Aws::new().await;
    let template = prefect().ecs_template();
    let metadata = json!({"prefect-aws": {"ecs": {"default_base_job_configuration": template}}});
    let api = refusing_prefect(metadata.to_string());
    let stack = TestStack::new("pool-tier");
    let spec = stack
        .spec_toml()
        .replace(&prefect().api_url, &format!("{api}/api"));
    let path = stack.path("tier.toml");
    std::fs::write(&path, spec).expect("write spec");
    let out = stack
        .run_bare(
            &[
                "apply",
                "--auto-approve",
                "--no-wait",
                path.to_str().unwrap(),
            ],
            &[],
        )
        .assert_failed();
    assert!(
        out.stderr.contains("answered 403")
            && out.stderr.contains("does not include hybrid work pools")
            && out.stderr.contains("nothing was changed in AWS"),
        "{out}"
    );
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// A one-thread HTTP stand-in for Prefect Cloud's refusal; returns its base URL.
fn refusing_prefect(metadata: String) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let (status, answer) = if request.contains("aggregate-worker-metadata") {
                ("200 OK", metadata.clone())
            } else if request.starts_with("POST") && request.contains("/work_pools/filter") {
                ("200 OK", "[]".to_owned())
            } else if request.starts_with("POST") && request.contains("/work_pools/ ") {
                (
                    "403 Forbidden",
                    json!({"detail": "Work pools of type 'ecs' are not available on your current plan. Upgrade to use hybrid work pools."}).to_string(),
                )
            } else {
                ("404 Not Found", json!({"detail": "Not Found"}).to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

/// A self-hosted server behind basic auth: the auth string goes to Secrets Manager and to the
/// worker as PREFECT_API_AUTH_STRING, prefect-ecs manages the pool with it, and a wrong one is
/// a 401 that says what is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn a_self_hosted_server_with_an_auth_string() {
    let aws = Aws::new().await;
    let server = prefect_with_auth();
    let auth = server.auth.clone().expect("auth string");
    let mut stack = TestStack::new("pool-auth");
    stack.forbid(&auth);
    stack.forbid(auth.split_once(':').expect("user:pass").1);
    stack.workers_online = false;
    stack.prefect_table = Some(format!(
        "[prefect]\napi_url = \"{}\"\nauth_string_env = \"PREFECT_API_AUTH_STRING\"\n",
        server.api_url
    ));
    let env = [("PREFECT_API_AUTH_STRING", auth.as_str())];
    stack
        .run(&["apply", "--auto-approve", "--no-wait"], &env)
        .assert_ok();
    let pool = &stack.workers[0].work_pool;
    let stored = server.pool(pool).expect("the pool is on the server");
    assert_eq!(secret_value(&aws, &stack.secret_name()).await, auth);
    assert_eq!(
        default_of(&stored, "prefect_api_auth_string_secret_arn"),
        &json!(secret_arn(&aws, &stack.secret_name()).await)
    );
    assert_eq!(
        default_of(&stored, "prefect_api_key_secret_arn"),
        &json!(null)
    );
    let service = ecs_service(&aws, &stack.cluster(), &stack.workers[0].name)
        .await
        .expect("service");
    let (td, _) = task_definition(&aws, service.task_definition().expect("td")).await;
    let secrets: Vec<&str> = td.container_definitions()[0]
        .secrets()
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(secrets, ["PREFECT_API_AUTH_STRING"]);

    // The read-only commands with the auth string: it never shows (the harness forbids it).
    // verify's exit code is not asserted: its Elastic IP check counts the addresses of every
    // test sharing this moto.
    let out = stack.run(&["verify"], &env);
    assert!(
        out.stdout
            .contains("with the credential: reachable, credential accepted"),
        "{out}"
    );
    stack.run(&["status"], &env).assert_ok();
    stack.run(&["logs", "--since", "1h"], &env).assert_ok();

    let out = stack
        .run(&["plan"], &[("PREFECT_API_AUTH_STRING", "ops:wrong")])
        .assert_failed();
    assert!(
        out.stderr.contains("answered 401")
            && out.stderr.contains("Prefect API auth string is wrong"),
        "{out}"
    );
    stack
        .run(&["destroy", "--auto-approve", "--no-wait"], &env)
        .assert_ok();
    assert!(server.pool(pool).is_none(), "destroy left the pool");
}
