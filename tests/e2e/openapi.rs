//! The OpenAPI document at `GET /openapi.json`, held against the running server: every route
//! the README names is in it, every documented route answers and every other method is 405,
//! and the document's request examples are valid requests whose answers match the documented
//! schemas (checked by a JSON Schema 2020-12 validator, OpenAPI 3.1's dialect).

use serde_json::{json, Value};

use crate::server::Server;
use crate::support::temp_dir;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// A validator of `schema` (a schema of the document, `$ref`s into its components).
fn validator(document: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    let root_object = root.as_object_mut().expect("a schema object");
    root_object.insert("components".into(), document["components"].clone());
    jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("the document's schema {schema} compiles: {e}"))
}

fn assert_valid(document: &Value, schema: &Value, instance: &Value, what: &str) {
    if let Err(error) = validator(document, schema).validate(instance) {
        panic!("{what}: {instance} does not match {schema}: {error}");
    }
}

/// The schema a documented operation answers with `status`.
fn answer_schema<'a>(document: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let response = &document["paths"][path][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    &response["content"]["application/json"]["schema"]
}

/// `(status, body)` of a request with `method`, as a plain HTTP client sends it.
fn call(server: &Server, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let url = format!("{}{path}", server.url);
    let text = body.map(Value::to_string).unwrap_or_default();
    let response = match method {
        "get" => agent.get(&url).call(),
        "delete" => agent.delete(&url).call(),
        "post" => agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&text),
        "put" => agent
            .put(&url)
            .header("Content-Type", "application/json")
            .send(&text),
        "patch" => agent
            .patch(&url)
            .header("Content-Type", "application/json")
            .send(&text),
        other => panic!("no such method {other}"),
    };
    let mut response = response.expect("the server answers");
    let text = response.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (response.status().as_u16(), value)
}

/// `METHOD /path` of every route the README names.
fn readme_routes() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README");
    let mut routes = Vec::new();
    for method in ["GET", "POST", "DELETE", "PUT", "PATCH"] {
        for (at, _) in readme.match_indices(&format!("{method} /")) {
            let path: String = readme[at + method.len() + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/{}_.-".contains(*c))
                .collect();
            routes.push((method.to_ascii_lowercase(), path));
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

#[test]
fn the_document_lists_every_route_and_its_examples_are_answered_as_documented() {
    let server = Server::start(&temp_dir("openapi"), &[]);
    let (status, document) = call(&server, "get", "/openapi.json", None);
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");

    let readme = readme_routes();
    assert!(readme.len() >= 10, "the README's routes: {readme:?}");
    for (method, path) in &readme {
        assert!(
            paths.get(path).and_then(|item| item.get(method)).is_some(),
            "the README's {method} {path} is not in the document"
        );
    }

    // Documented methods are routed (anything but the router's own 404); the others are 405.
    for (path, item) in paths {
        let concrete = path.replace("{job}", "no-such-job");
        for method in METHODS {
            let (status, body) = call(&server, method, &concrete, Some(&json!({})));
            if item.get(method).is_some() {
                assert_ne!(status, 405, "{method} {path}: {body}");
                assert_ne!(
                    body["error"]["message"], "no such route",
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not documented");
            }
        }
    }

    // Every request example is valid, and the server answers it as documented.
    let schemas = &document["components"]["schemas"];
    let records = schemas["Record"]["example"].clone();
    assert_valid(
        &document,
        &json!({"$ref": "#/components/schemas/Record"}),
        &records,
        "Record's example",
    );
    let (status, answer) = call(&server, "post", "/v1/records", Some(&json!([records])));
    assert_eq!(status, 200, "{answer}");
    assert_valid(
        &document,
        answer_schema(&document, "/v1/records", "post", 200),
        &answer,
        "records",
    );

    let mut examples = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let Some(reference) =
                operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            else {
                continue;
            };
            let name = reference.rsplit('/').next().unwrap();
            let Some(example) = schemas[name].get("example") else {
                continue;
            };
            assert_valid(
                &document,
                &json!({"$ref": reference}),
                example,
                &format!("{name}'s example"),
            );
            examples += 1;
            // Admin routes are off on this keyless server (the rollout tests send their
            // bodies to a server with an admin key).
            if operation["security"] == json!([{"admin_key": []}]) {
                continue;
            }
            let (status, answer) = call(&server, method, path, Some(example));
            assert!(
                (200..300).contains(&status),
                "{method} {path} with its example: {status} {answer}"
            );
            assert_valid(
                &document,
                answer_schema(&document, path, method, status),
                &answer,
                path,
            );
        }
    }
    assert_eq!(
        examples, 5,
        "search, context, contributors, backfill and canary have examples"
    );

    // The backfill job the example started, and the error answers, as documented.
    let job = server.run_backfill(None, "{}");
    assert_valid(
        &document,
        answer_schema(&document, "/v1/backfill/{job}", "get", 200),
        &job,
        "a job",
    );
    let (status, answer) = call(&server, "post", "/v1/search", Some(&json!({"query": " "})));
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["kind"], "malformed-prompt");
    assert_valid(
        &document,
        answer_schema(&document, "/v1/search", "post", 400),
        &answer,
        "an error",
    );
    let (status, answer) = call(&server, "get", "/v1/backfill/no-such-job", None);
    assert_eq!(status, 404);
    assert_valid(
        &document,
        answer_schema(&document, "/v1/backfill/{job}", "get", 404),
        &answer,
        "a 404",
    );
    for path in ["/healthz", "/readyz"] {
        let (status, answer) = call(&server, "get", path, None);
        assert_eq!(status, 200);
        assert_valid(
            &document,
            answer_schema(&document, path, "get", 200),
            &answer,
            path,
        );
    }
}
