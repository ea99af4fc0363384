//! Section 5: each function's size and cold start.
//!
//! Size: the Lambda artefacts `target/lambda/<fn>/bootstrap.zip` made by
//! scripts/build-lambdas.sh (release, arm64), raw and zipped.
//! Init: the time from process start to the first `GET .../runtime/invocation/next` — the
//! moment a Lambda function is ready for its first request, with config read, pool and
//! clients built. Measured by emulating the Lambda Runtime API on loopback with the
//! function's local build (`target/release/<fn>` if present, else `target/debug/<fn>`), the
//! database reachable on loopback and the offline model.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Result;
use farmops::testing::TestDb;
use tokio::{io::AsyncReadExt, net::TcpListener};

use crate::{
    Mode,
    stats::{median, ms},
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn functions() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace().join("functions"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// (uncompressed bootstrap, zip file) sizes of `target/lambda/<fn>/bootstrap.zip`.
fn zip_sizes(function: &str) -> Option<(u64, u64)> {
    let path = workspace()
        .join("target/lambda")
        .join(function)
        .join("bootstrap.zip");
    let zip = std::fs::read(path).ok()?;
    Some((uncompressed_size(&zip)?, zip.len() as u64))
}

/// The uncompressed size of a zip's first entry, read from its central directory (found
/// through the end-of-central-directory record at the end of the file).
fn uncompressed_size(zip: &[u8]) -> Option<u64> {
    let u32_at = |at: usize| {
        zip.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let eocd = (0..zip.len().checked_sub(21)?)
        .rev()
        .find(|&i| u32_at(i) == Some(0x0605_4b50))?;
    let directory = u32_at(eocd + 16)? as usize;
    if u32_at(directory)? != 0x0201_4b50 {
        return None;
    }
    u32_at(directory + 24).map(u64::from)
}

fn local_binary(function: &str) -> Option<(PathBuf, &'static str)> {
    for profile in ["release", "debug"] {
        let path = workspace().join("target").join(profile).join(function);
        if path.is_file() {
            return Some((path, profile));
        }
    }
    None
}

/// Starts the function against a fake Runtime API; returns the time to its first poll.
async fn init_time(binary: &Path, function: &str, db: &TestDb) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?;
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("FARMOPS_DATABASE_URL", db.app_url())
        .env("FARMOPS_OWNER_DATABASE_URL", db.owner_url())
        .env("RUST_LOG", "off");
    if function == "billing" {
        // billing connects as its own role and needs a Paystack key (config.rs)
        command
            .env("FARMOPS_BILLING_DATABASE_URL", db.billing_url())
            .env("FARMOPS_PAYSTACK_SECRET_KEY", "sk_test_farmops_bench");
    }
    let start = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
    let elapsed = start.elapsed();
    let ready = match accepted {
        Ok(Ok((mut socket, _))) => {
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf))
                .await
                .unwrap_or(Ok(0))
                .unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).contains("/runtime/invocation/next")
        }
        _ => false,
    };
    let _ = child.kill().await;
    if !ready {
        anyhow::bail!("{function} never asked the Runtime API for an event");
    }
    Ok(elapsed)
}

pub async fn run(mode: &Mode) -> Result<()> {
    let db = TestDb::new().await?;
    println!("## 5. Cold start and size\n");
    println!(
        "| function | bootstrap (arm64, release) | zipped | init: start → ready for first request (median) | build measured |"
    );
    println!("|---|---|---|---|---|");
    let runs = if mode.reps == 1 { 3 } else { 9 };
    for function in functions() {
        let (raw, zipped) = match zip_sizes(&function) {
            Some((raw, zipped)) => (
                format!("{:.1} MB", raw as f64 / 1e6),
                format!("{:.1} MB", zipped as f64 / 1e6),
            ),
            None => ("not built".into(), "run scripts/build-lambdas.sh".into()),
        };
        let init = match local_binary(&function) {
            Some((binary, profile)) => {
                let mut times = Vec::new();
                for _ in 0..runs {
                    match init_time(&binary, &function, &db).await {
                        Ok(t) => times.push(ms(t)),
                        Err(e) => {
                            times.clear();
                            println!("<!-- {e} -->");
                            break;
                        }
                    }
                }
                if times.is_empty() {
                    ("failed".to_string(), profile)
                } else {
                    (format!("{:.1} ms", median(times)), profile)
                }
            }
            None => ("no local build".to_string(), "-"),
        };
        println!(
            "| {function} | {raw} | {zipped} | {} | {} |",
            init.0, init.1
        );
    }
    println!(
        "\nTargets: zipped under 8 MB each, init under 50 ms. No naive counterpart is measured here: the"
    );
    println!(
        "pool and SDK clients are built once at cold start and connect lazily, which is the design.\n"
    );
    Ok(())
}
