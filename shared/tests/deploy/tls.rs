//! Verified TLS: a throwaway PostgreSQL cluster (initdb as the `postgres` user, `ssl=on`, only
//! `hostssl` connections) serving a certificate for `localhost` issued by a CA made here.
//! The pool connects with that CA and host name, and refuses a certificate that does not chain
//! to its trusted roots or does not match the host name.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use farmops::{
    config::{Config, DatabaseConfig},
    db::{self, Db, UrlPassword, tls},
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

struct Pki {
    ca_pem: String,
    other_ca_pem: String,
}

/// A CA, a server certificate for `localhost` signed by it, and an unrelated CA.
fn make_certificates(dir: &Path) -> Pki {
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (params, key, cert)
    };
    let (ca_params, ca_key, ca_cert) = ca("FarmOps test CA");
    let (_, _, other_cert) = ca("Someone else's CA");
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_key = KeyPair::generate().unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("server.crt"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        other_ca_pem: other_cert.pem(),
    }
}

/// A private cluster on a free port, stopped and removed when dropped.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(args: &[&str]) {
    run(Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args));
}

impl Cluster {
    fn start() -> (Cluster, Pki) {
        let dir =
            std::env::temp_dir().join(format!("farmops-tls-{}", uuid::Uuid::new_v4().simple()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        run(Command::new("chown").args(["-R", "postgres:postgres", dir.to_str().unwrap()]));
        as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        let pki = make_certificates(&data);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\n",
            dir.display()
        );
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).unwrap();
        // TLS connections only: a plaintext attempt is rejected by the server too
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        run(Command::new("chown").args(["-R", "postgres:postgres", dir.to_str().unwrap()]));
        run(Command::new("chmod").args(["600", data.join("server.key").to_str().unwrap()]));
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-l",
            dir.join("server.log").to_str().unwrap(),
            "-w",
            "start",
        ]);
        (Cluster { dir, port }, pki)
    }

    fn url(&self, host: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl")])
            .args([
                "-D",
                self.dir.join("data").to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pool(url: &str, ca_pem: &str) -> Db {
    let mut config = DatabaseConfig::for_url(url);
    config.connect_timeout = Duration::from_secs(5);
    let tls = tls::connector(tls::roots_from_pem(ca_pem.as_bytes()).unwrap()).unwrap();
    Db::connect(&config, std::sync::Arc::new(UrlPassword), tls).unwrap()
}

async fn ssl_in_use(db: &Db) -> farmops::Result<bool> {
    let client = db.client().await?;
    let row = client
        .query_typed(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row[0].get(0))
}

fn refusal(result: farmops::Result<bool>) -> String {
    let err = result.expect_err("the connection must be refused");
    format!("{err:?}")
}

#[tokio::test]
async fn the_pool_verifies_chain_and_host_name() {
    let (cluster, pki) = tokio::task::spawn_blocking(Cluster::start).await.unwrap();

    // right CA, right name: connects, over TLS
    assert!(
        ssl_in_use(&pool(&cluster.url("localhost"), &pki.ca_pem))
            .await
            .unwrap()
    );

    // a certificate that does not chain to the trusted roots
    let err = refusal(ssl_in_use(&pool(&cluster.url("localhost"), &pki.other_ca_pem)).await);
    assert!(err.contains("UnknownIssuer"), "{err}");

    // the right chain for another name (we connect to 127.0.0.1, the certificate is for localhost)
    let err = refusal(ssl_in_use(&pool(&cluster.url("127.0.0.1"), &pki.ca_pem)).await);
    assert!(err.contains("certificate not valid for name"), "{err}");

    // the Amazon roots (what the functions trust for RDS Proxy) refuse this private CA
    let amazon = tls::connector(tls::amazon_roots()).unwrap();
    let db = Db::connect(
        &DatabaseConfig::for_url(cluster.url("localhost")),
        std::sync::Arc::new(UrlPassword),
        amazon,
    )
    .unwrap();
    let err = refusal(ssl_in_use(&db).await);
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn connect_from_config_wires_the_configured_tls() {
    let (cluster, pki) = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let bundle = cluster.dir.join("ca.pem");
    std::fs::write(&bundle, &pki.ca_pem).unwrap();
    let config = |vars: Vec<(&'static str, String)>| {
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap()
            .database
    };
    let url = cluster.url("localhost");

    // FARMOPS_DB_TLS=cluster with the CA bundle of this deployment: verified TLS
    let ok = config(vec![
        ("FARMOPS_DATABASE_URL", url.clone()),
        ("FARMOPS_DB_TLS", "cluster".into()),
        ("FARMOPS_DB_CA_BUNDLE", bundle.display().to_string()),
    ]);
    let db = db::connect_from_config(&ok).await.unwrap();
    assert!(ssl_in_use(&db).await.unwrap());

    // the shipped RDS bundle does not vouch for this server
    let rds = config(vec![
        ("FARMOPS_DATABASE_URL", url.clone()),
        ("FARMOPS_DB_TLS", "cluster".into()),
    ]);
    refusal(ssl_in_use(&db::connect_from_config(&rds).await.unwrap()).await);

    // TLS disabled: the server (hostssl only) refuses the plaintext connection
    let plain = config(vec![("FARMOPS_DATABASE_URL", url)]);
    refusal(ssl_in_use(&db::connect_from_config(&plain).await.unwrap()).await);
}
