//! Database faults for the handlers' tests (issue 20): a pool of its own (named by
//! `application_name`, so its backends can be told from everyone else's), a killer that
//! terminates that pool's backends mid-request (what a restart or a failover does to every
//! connection), a database that cannot be reached (the check of the 503 they must answer:
//! `farmops_http::testing::check_unavailable`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Result;
use tokio::task::JoinHandle;

use crate::{
    config::DatabaseConfig,
    db::{Db, Tls, UrlPassword},
};

/// A small pool (4 connections, 2 s to connect) for `url`; with `application_name` set, the
/// name a [`Killer`] looks for.
pub fn pool(url: &str, application_name: Option<&str>) -> Result<Db> {
    let url = match application_name {
        Some(name) => format!("{url}?application_name={name}"),
        None => url.to_string(),
    };
    let mut config = DatabaseConfig::for_url(url);
    config.pool_size = 4;
    config.connect_timeout = Duration::from_secs(2);
    Ok(Db::connect(&config, Arc::new(UrlPassword), Tls::Disabled)?)
}

/// `database` as `user` at a local port nobody listens on: every connection is refused.
pub fn unreachable_url(user: &str, password: &str, database: &str) -> Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!(
        "postgres://{user}:{password}@127.0.0.1:{port}/{database}"
    ))
}

/// A task terminating, over and over while armed, the backends of `database` named
/// `application_name` that are not idle: running a statement, or inside a transaction between
/// one statement and the next or its `COMMIT`. A test disarms it for some requests
/// ([`Killer::arm`]) so that those run whole however slow the machine is.
pub struct Killer {
    stop: Arc<AtomicBool>,
    armed: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl Killer {
    /// Starts the killer, armed.
    pub async fn start(database: &str, application_name: &str) -> Result<Killer> {
        let admin = super::admin_client(database).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(true));
        let name = application_name.to_string();
        let task = tokio::spawn({
            let (stop, armed) = (stop.clone(), armed.clone());
            async move {
                let mut killed = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if !armed.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    let rows = admin
                        .query(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                              WHERE datname = current_database() AND application_name = $1
                                AND state <> 'idle'",
                            &[&name],
                        )
                        .await
                        .expect("terminating");
                    killed += rows.len() as u64;
                    let pause = if rows.is_empty() { 1 } else { 40 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                killed
            }
        });
        Ok(Killer { stop, armed, task })
    }

    /// Arms (kills from now on) or disarms (leaves the pool alone) the killer.
    pub fn arm(&self, armed: bool) {
        self.armed.store(armed, Ordering::Relaxed);
    }

    /// Stops the killer; answers how many backends it terminated.
    pub async fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}
