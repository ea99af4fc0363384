//! moto's server (PyPI `moto[server]`) on loopback: a local STS and Secrets Manager.

use std::{
    net::TcpListener as StdListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto's STS on loopback; killed when dropped.
pub struct LocalSts {
    child: Child,
    pub url: String,
}

impl LocalSts {
    pub fn start() -> LocalSts {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "python3 -m moto.server (pip install 'moto[server]'; scripts/check-deploy.sh does)",
            );
        let sts = LocalSts {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sts
    }
}

impl Drop for LocalSts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's Secrets Manager on loopback, with the SDK configuration (fixed credentials, the
/// local endpoint) that reads it; moto is killed when dropped.
pub struct LocalSecrets {
    _moto: LocalSts,
    pub sdk: aws_config::SdkConfig,
}

impl LocalSecrets {
    pub async fn start(region: &'static str, access_key_id: &'static str) -> LocalSecrets {
        use aws_config::{BehaviorVersion, Region};
        use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};

        let moto = tokio::task::spawn_blocking(LocalSts::start).await.unwrap();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region))
            .endpoint_url(&moto.url)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                access_key_id,
                "secret",
                None,
                None,
                "test",
            )))
            .load()
            .await;
        LocalSecrets { _moto: moto, sdk }
    }

    /// Stores `value` as the secret `name`'s `SecretString`; its ARN.
    pub async fn create(&self, name: &str, value: &str) -> String {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_string()
    }
}
