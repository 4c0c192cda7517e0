//! The Prometheus provider against a real Prometheus holding known data (TSDB blocks made by
//! promtool), directly and through a proxy that demands credentials or answers slowly.

mod common;

use common::{Prometheus, Proxy, start_proxy};
use serin::analysis::condition::QueryResult;
use serin::analysis::prometheus::Prometheus as Provider;
use serin::analysis::provider::{Credentials, ProviderError};
use serin::crd::analysis::{Header, PrometheusProvider};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Blocks with three series over the last ten minutes.
fn blocks(dir: &Path) -> std::path::PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut om = String::from("# TYPE test_value gauge\n");
    for i in 0..=30 {
        let t = now - 600 + i * 20;
        om.push_str(&format!("test_value{{case=\"one\"}} 0.25 {t}\ntest_value{{case=\"pair\",n=\"a\"}} 1 {t}\ntest_value{{case=\"pair\",n=\"b\"}} 2 {t}\n"));
    }
    om.push_str("# EOF\n");
    std::fs::write(dir.join("data.om"), om).expect("write openmetrics");
    let promtool = common::which("promtool").expect("promtool comes with Debian's prometheus package: run `make test`");
    let out = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(dir.join("data.om"))
        .arg(dir.join("tsdb"))
        .output()
        .expect("promtool runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join("tsdb")
}

fn provider(address: &str, headers: Vec<Header>, creds: Credentials, timeout: Duration) -> Provider {
    let spec = PrometheusProvider {
        address: address.into(),
        query: String::new(),
        headers,
        timeout: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
            format!("{}ms", timeout.as_millis()),
        )),
        ..Default::default()
    };
    Provider::new(&spec, &creds, &Default::default()).expect("provider builds")
}

async fn eventually_value(p: &Provider, q: &str) -> QueryResult {
    for _ in 0..100 {
        if let Ok(r) = p.query(q).await
            && r != QueryResult::Empty
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no data for {q}");
}

#[tokio::test]
async fn measures_known_data_and_reports_errors_plainly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = blocks(dir.path());
    let prom = Prometheus::start_with_data(&[], Some(&data));
    let p = provider(&prom.url(), vec![], Credentials::default(), Duration::from_secs(5));

    assert_eq!(
        eventually_value(&p, r#"test_value{case="one"}"#).await,
        QueryResult::Scalar(0.25)
    );
    match p.query(r#"sort(test_value{case="pair"})"#).await.unwrap() {
        QueryResult::Vector(v) => assert_eq!(v, vec![1.0, 2.0]),
        other => panic!("expected two values, got {other:?}"),
    }
    assert_eq!(
        p.query(r#"test_value{case="missing"}"#).await.unwrap(),
        QueryResult::Empty
    );
    let nan = p
        .query(
            r#"(test_value{case="one"} - test_value{case="one"}) / (test_value{case="one"} - test_value{case="one"})"#,
        )
        .await
        .unwrap();
    assert!(nan.is_no_data(), "0/0 is no data, not a value: {nan:?}");
    assert!(matches!(p.query("sum(").await, Err(ProviderError::Query(_))));
    assert!(
        matches!(p.query(r#"test_value[5m]"#).await, Err(ProviderError::Query(_))),
        "range vectors are refused"
    );

    let closed = provider(
        &format!("http://127.0.0.1:{}", common::free_port()),
        vec![],
        Credentials::default(),
        Duration::from_secs(2),
    );
    assert!(matches!(
        closed.query("up").await,
        Err(ProviderError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn sends_headers_and_credentials_and_times_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = blocks(dir.path());
    let prom = Prometheus::start_with_data(&[], Some(&data));
    let direct = provider(&prom.url(), vec![], Credentials::default(), Duration::from_secs(5));
    eventually_value(&direct, r#"test_value{case="one"}"#).await;
    let tenant = vec![Header {
        key: "X-Scope-OrgID".into(),
        value: "team-a".into(),
    }];

    let bearer = start_proxy(Proxy {
        upstream: prom.url(),
        authorization: "Bearer s3cret-token".into(),
        delay: Duration::ZERO,
    })
    .await;
    let with_token = Credentials {
        bearer_token: Some("s3cret-token\n".into()),
        ..Default::default()
    };
    let ok = provider(&bearer, tenant.clone(), with_token, Duration::from_secs(5));
    assert_eq!(
        ok.query(r#"test_value{case="one"}"#).await.unwrap(),
        QueryResult::Scalar(0.25)
    );
    let wrong = Credentials {
        bearer_token: Some("not-it".into()),
        ..Default::default()
    };
    let refused = provider(&bearer, tenant.clone(), wrong, Duration::from_secs(5))
        .query("up")
        .await;
    let err = refused.expect_err("a refused request is an error, never a value");
    assert!(
        !err.to_string().contains("not-it"),
        "credentials never appear in errors: {err}"
    );
    let no_tenant = provider(
        &bearer,
        vec![],
        Credentials {
            bearer_token: Some("s3cret-token".into()),
            ..Default::default()
        },
        Duration::from_secs(5),
    );
    assert!(no_tenant.query("up").await.is_err(), "the header is sent");

    let basic = start_proxy(Proxy {
        upstream: prom.url(),
        authorization: "Basic YWxpY2U6b3Blbi1zZXNhbWU=".into(),
        delay: Duration::ZERO,
    })
    .await;
    let alice = Credentials {
        basic: Some(("alice".into(), "open-sesame".into())),
        ..Default::default()
    };
    assert_eq!(
        provider(&basic, tenant.clone(), alice, Duration::from_secs(5))
            .query(r#"test_value{case="one"}"#)
            .await
            .unwrap(),
        QueryResult::Scalar(0.25)
    );

    let slow = start_proxy(Proxy {
        upstream: prom.url(),
        authorization: String::new(),
        delay: Duration::from_secs(3),
    })
    .await;
    let started = std::time::Instant::now();
    let timed_out = provider(&slow, tenant, Credentials::default(), Duration::from_millis(500))
        .query("up")
        .await;
    assert!(matches!(timed_out, Err(ProviderError::Timeout(_))), "{timed_out:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with the openssl command.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("write");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=serin-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    std::fs::write(
        dir.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .expect("write");
}

#[tokio::test]
async fn speaks_tls_with_a_given_ca_or_when_told_to_skip_verification() {
    use serin::crd::analysis::{PrometheusTls, SecretKeyRef};
    let dir = tempfile::tempdir().expect("temp dir");
    certificates(dir.path());
    let prom = Prometheus::start_full(&[], None, Some(&dir.path().join("web.yml")));
    let address = format!("https://127.0.0.1:{}", prom.port);
    let tls = |insecure: Option<bool>, ca: bool| PrometheusTls {
        ca: ca.then(|| SecretKeyRef {
            name: "prom-ca".into(),
            key: "ca.crt".into(),
        }),
        insecure_skip_verify: insecure,
    };
    // One cache for every build: clients with different TLS settings must not be shared.
    let clients = serin::analysis::http::HttpClients::default();
    let build = |t: PrometheusTls, pem: Option<Vec<u8>>| {
        let spec = PrometheusProvider {
            address: address.clone(),
            query: String::new(),
            tls: Some(t),
            timeout: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                "5s".into(),
            )),
            ..Default::default()
        };
        Provider::new(
            &spec,
            &Credentials {
                ca_pem: pem,
                ..Default::default()
            },
            &clients,
        )
        .expect("provider builds")
    };
    let ca = std::fs::read(dir.path().join("ca.crt")).expect("ca");
    let trusted = build(tls(None, true), Some(ca));
    assert_eq!(eventually_value(&trusted, "vector(1)").await, QueryResult::Scalar(1.0));
    let untrusted = build(tls(None, false), None);
    assert!(
        matches!(
            untrusted.query("vector(1)").await,
            Err(ProviderError::Unreachable { .. })
        ),
        "an unknown CA is refused"
    );
    let skipping = build(tls(Some(true), false), None);
    assert_eq!(skipping.query("vector(1)").await.unwrap(), QueryResult::Scalar(1.0));
}
