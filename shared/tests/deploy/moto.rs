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
