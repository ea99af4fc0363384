use super::*;
use std::collections::HashMap;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn reads_defaults_and_overrides() {
    let c = config(&[(
        "FARMOPS_DATABASE_URL",
        "postgres://app:pw@127.0.0.1:5432/farmops",
    )])
    .unwrap();
    assert_eq!(c.database.pool_size, 4);
    assert_eq!(c.database.connect_timeout, Duration::from_secs(5));
    let c = config(&[
        ("FARMOPS_DATABASE_URL", "postgres://app@h/db"),
        ("FARMOPS_DB_POOL_SIZE", "2"),
        ("FARMOPS_DB_CONNECT_TIMEOUT_MS", "250"),
    ])
    .unwrap();
    assert_eq!(c.database.pool_size, 2);
    assert_eq!(c.database.connect_timeout, Duration::from_millis(250));
}

#[test]
fn missing_and_invalid_values_name_the_variable() {
    assert_eq!(
        config(&[]).unwrap_err(),
        ConfigError::Missing("FARMOPS_DATABASE_URL")
    );
    let err = config(&[
        ("FARMOPS_DATABASE_URL", "postgres://h/db"),
        ("FARMOPS_DB_POOL_SIZE", "many"),
    ])
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                var: "FARMOPS_DB_POOL_SIZE",
                ..
            }
        ),
        "{err}"
    );
    let err = config(&[
        ("FARMOPS_DATABASE_URL", "postgres://h/db"),
        ("FARMOPS_DB_POOL_SIZE", "0"),
    ])
    .unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Invalid {
            var: "FARMOPS_DB_POOL_SIZE",
            ..
        }
    ));
    let err = config(&[("FARMOPS_DATABASE_URL", "postgres://h:notaport/db")]).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Invalid {
            var: "FARMOPS_DATABASE_URL",
            ..
        }
    ));
}

#[test]
fn iam_auth_and_tls_modes() {
    let c = config(&[("FARMOPS_DATABASE_URL", "postgres://farmops_app@h/db")]).unwrap();
    assert_eq!(c.database.iam_auth, None);
    assert_eq!(c.database.tls, TlsMode::Disable);
    let c = config(&[
        (
            "FARMOPS_DATABASE_URL",
            "postgres://farmops_app@proxy.example:5432/db",
        ),
        ("FARMOPS_DB_IAM_AUTH", "1"),
        ("AWS_REGION", "eu-west-1"),
    ])
    .unwrap();
    assert_eq!(
        c.database.iam_auth,
        Some(IamAuth {
            region: "eu-west-1".into()
        })
    );
    assert_eq!(c.database.tls, TlsMode::Proxy, "IAM implies verified TLS");
    let c = config(&[
        ("FARMOPS_DATABASE_URL", "postgres://u@h/db"),
        ("FARMOPS_DB_IAM_AUTH", "1"),
        ("AWS_REGION", "eu-west-1"),
        ("FARMOPS_DB_REGION", "us-west-2"),
        ("FARMOPS_DB_TLS", "cluster"),
        ("FARMOPS_DB_CA_BUNDLE", "/etc/ca.pem"),
    ])
    .unwrap();
    assert_eq!(c.database.iam_auth.unwrap().region, "us-west-2");
    assert_eq!(c.database.tls, TlsMode::Cluster);
    assert_eq!(c.database.ca_bundle.unwrap().to_str(), Some("/etc/ca.pem"));
}

#[test]
fn unsafe_or_incomplete_iam_settings_are_refused() {
    let base = ("FARMOPS_DATABASE_URL", "postgres://u@h/db");
    assert_eq!(
        config(&[base, ("FARMOPS_DB_IAM_AUTH", "1")]).unwrap_err(),
        ConfigError::Missing("AWS_REGION")
    );
    let err = config(&[
        base,
        ("FARMOPS_DB_IAM_AUTH", "1"),
        ("AWS_REGION", "eu-west-1"),
        ("FARMOPS_DB_TLS", "disable"),
    ])
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                var: "FARMOPS_DB_TLS",
                ..
            }
        ),
        "{err}"
    );
    let err = config(&[base, ("FARMOPS_DB_TLS", "verify-full")]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                var: "FARMOPS_DB_TLS",
                ..
            }
        ),
        "{err}"
    );
    let err = config(&[base, ("FARMOPS_DB_IAM_AUTH", "yes")]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                var: "FARMOPS_DB_IAM_AUTH",
                ..
            }
        ),
        "{err}"
    );
    let err = config(&[
        ("FARMOPS_DATABASE_URL", "postgres://h/db"),
        ("FARMOPS_DB_IAM_AUTH", "1"),
        ("AWS_REGION", "eu-west-1"),
    ])
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                var: "FARMOPS_DATABASE_URL",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn billing_needs_its_url_and_exactly_one_source_of_the_paystack_key() {
    let billing = |vars: &[(&str, &str)]| {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BillingConfig::from_lookup(|k| map.get(k).cloned())
    };
    let url = (
        "FARMOPS_BILLING_DATABASE_URL",
        "postgres://farmops_billing:pw@127.0.0.1/farmops",
    );
    let key = ("FARMOPS_PAYSTACK_SECRET_KEY", "sk_test_farmops_local");
    let arn = (
        "FARMOPS_PAYSTACK_SECRET_ARN",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:paystack-AbCdEf",
    );
    let c = billing(&[url, key]).unwrap();
    assert_eq!(
        c.paystack_secret,
        PaystackSecretSource::Key(Secret::new("sk_test_farmops_local"))
    );
    assert!(
        !format!("{c:?}").contains("sk_test"),
        "the key never prints"
    );
    let c = billing(&[url, arn]).unwrap();
    assert!(matches!(
        c.paystack_secret,
        PaystackSecretSource::SecretsManager { .. }
    ));
    assert_eq!(
        billing(&[url]).unwrap_err(),
        ConfigError::Missing("FARMOPS_PAYSTACK_SECRET_KEY")
    );
    assert_eq!(
        billing(&[key]).unwrap_err(),
        ConfigError::Missing("FARMOPS_BILLING_DATABASE_URL")
    );
    assert!(matches!(
        billing(&[url, key, arn]).unwrap_err(),
        ConfigError::Invalid {
            var: "FARMOPS_PAYSTACK_SECRET_KEY",
            ..
        }
    ));
    assert!(matches!(
        billing(&[url, ("FARMOPS_PAYSTACK_SECRET_ARN", "paystack")]).unwrap_err(),
        ConfigError::Invalid {
            var: "FARMOPS_PAYSTACK_SECRET_ARN",
            ..
        }
    ));
    // the app's URL is not the billing role's
    assert_eq!(
        billing(&[("FARMOPS_DATABASE_URL", "postgres://farmops_app@h/db"), key]).unwrap_err(),
        ConfigError::Missing("FARMOPS_BILLING_DATABASE_URL")
    );
}

#[test]
fn secrets_never_print() {
    let c = config(&[("FARMOPS_DATABASE_URL", "postgres://app:hunter2@h/db")]).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}
