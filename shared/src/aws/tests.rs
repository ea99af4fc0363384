//! Table tests of the host check, the Bedrock error classifier and the secrets' parsers.

#[cfg(test)]
mod lambda_host_tests {
    use super::super::LambdaHost;

    #[test]
    fn the_real_service_cargo_lambda_watch_and_a_plain_process_are_told_apart() {
        let watch = [
            ("AWS_LAMBDA_FUNCTION_NAME", "chat"),
            ("AWS_LAMBDA_RUNTIME_API", "http://127.0.0.1:9000/.rt/chat"),
        ];
        let cases: &[(&[(&str, &str)], LambdaHost)] = &[
            (&[], LambdaHost::Local),
            (&[("AWS_LAMBDA_FUNCTION_NAME", " ")], LambdaHost::Local),
            (&watch, LambdaHost::Emulated),
            (
                &[("LAMBDA_TASK_ROOT", "/var/task"), watch[0]],
                LambdaHost::Aws,
            ),
            (
                &[("AWS_EXECUTION_ENV", "AWS_Lambda_rapid"), watch[0]],
                LambdaHost::Aws,
            ),
            (&[("LAMBDA_TASK_ROOT", "/var/task")], LambdaHost::Aws),
        ];
        for (vars, want) in cases {
            let host = LambdaHost::from_lookup(|k| {
                vars.iter()
                    .find(|(v, _)| *v == k)
                    .map(|(_, x)| x.to_string())
            });
            assert_eq!(host, *want, "{vars:?}");
            assert_eq!(host.is_aws(), *want == LambdaHost::Aws);
            assert_eq!(host.is_lambda_runtime(), *want != LambdaHost::Local);
        }
    }
}

#[cfg(test)]
mod bedrock_error_tests {
    use aws_sdk_bedrockruntime::error::{ConnectorError, ErrorMetadata, SdkError};
    use aws_sdk_bedrockruntime::operation::converse::ConverseError;
    use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;

    use super::super::classify_bedrock_error;
    use crate::Error;

    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder()
            .code(code)
            .message("said the service")
            .build()
    }

    fn converse(e: SdkError<ConverseError, ()>) -> Error {
        classify_bedrock_error(e)
    }

    fn invoke(e: SdkError<InvokeModelError, ()>) -> Error {
        classify_bedrock_error(e)
    }

    /// Each class of failure, through both operations the crate calls (Converse for chat,
    /// InvokeModel for embeddings): (case, error, 503?, text the message carries).
    #[test]
    fn every_class_of_bedrock_failure_is_classified_the_same_for_chat_and_embeddings() {
        let io = || std::io::Error::other("boom");
        let mut cases = vec![
            (
                "timeout",
                converse(SdkError::timeout_error(io())),
                true,
                "timed out",
            ),
            (
                "timeout (embed)",
                invoke(SdkError::timeout_error(io())),
                true,
                "timed out",
            ),
            (
                "dispatch timeout",
                converse(SdkError::dispatch_failure(ConnectorError::timeout(
                    io().into(),
                ))),
                true,
                "timed out",
            ),
            (
                "unreachable",
                invoke(SdkError::dispatch_failure(ConnectorError::io(io().into()))),
                true,
                "could not reach",
            ),
            (
                "construction",
                converse(SdkError::construction_failure(io())),
                false,
                "",
            ),
            (
                "unreadable",
                invoke(SdkError::response_error(io(), ())),
                false,
                "unreadable response",
            ),
        ];
        for (code, unavailable, text) in [
            ("ThrottlingException", true, "throttled"),
            ("ServiceUnavailableException", true, ""),
            ("ModelNotReadyException", true, ""),
            ("ModelTimeoutException", true, ""),
            ("ValidationException", false, "ValidationException"),
            ("AccessDeniedException", false, "AccessDeniedException"),
            ("InternalServerException", false, "InternalServerException"),
        ] {
            let chat = converse(SdkError::service_error(
                ConverseError::generic(meta(code)),
                (),
            ));
            let embed = invoke(SdkError::service_error(
                InvokeModelError::generic(meta(code)),
                (),
            ));
            cases.push((code, chat, unavailable, text));
            cases.push((code, embed, unavailable, text));
        }
        for (name, got, unavailable, text) in cases {
            match (&got, unavailable) {
                (Error::ModelUnavailable(m), true) | (Error::ModelFailed(m), false) => {
                    assert!(m.contains(text), "{name}: {m}")
                }
                _ => panic!("{name}: {got:?}, want unavailable={unavailable}"),
            }
        }
    }
}

#[cfg(test)]
mod paystack_secret_tests {
    use super::super::parse_paystack_secret;

    #[test]
    fn reads_the_plain_and_the_key_value_forms_and_never_echoes() {
        assert_eq!(
            parse_paystack_secret("sk_live_abc\n").unwrap().expose(),
            "sk_live_abc"
        );
        assert_eq!(
            parse_paystack_secret(r#"{"secret_key": "sk_live_abc"}"#)
                .unwrap()
                .expose(),
            "sk_live_abc"
        );
        for bad in ["", "  ", r#"{"key": "sk_live_hunter2"}"#, "sk_live hunter2"] {
            let err = parse_paystack_secret(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}

#[cfg(test)]
mod admin_secret_tests {
    use super::super::parse_admin_secret;

    #[test]
    fn reads_the_rds_managed_secret_shape_and_never_prints_the_password() {
        let (user, password) =
            parse_admin_secret(r#"{"username":"farmops_admin","password":"s3cr3t!"}"#).unwrap();
        assert_eq!(user, "farmops_admin");
        assert_eq!(password.expose(), "s3cr3t!");
        assert!(!format!("{password:?}").contains("s3cr3t"));
        for bad in ["", "{}", r#"{"username":"a"}"#, "password=hunter2"] {
            let err = parse_admin_secret(bad).unwrap_err().to_string();
            assert!(
                !err.contains("hunter2"),
                "the secret text never echoes: {err}"
            );
        }
    }
}
