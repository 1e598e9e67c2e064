//! A real PostgreSQL server for tests: initdb in a temporary directory, TLS-only with a
//! certificate from `kflex bootstrap tls`'s own code, SCRAM passwords, stopped and removed on
//! drop. Needs PostgreSQL's server binaries (`initdb` on PATH, or PostgreSQL 15 where Debian
//! puts it); when run as root, the server runs as user `postgres`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kflex::bootstrap::certificates::postgres_tls;
use kflex::bootstrap::database::{Login, Server, SslMode};
use kflex::bootstrap::pki::Lifetimes;

pub const ADMIN: &str = "postgres";

pub struct Postgres {
    pub port: u16,
    pub admin_password: String,
    pub ca_pem: Vec<u8>,
    bindir: PathBuf,
    dir: tempfile::TempDir,
    owner: Option<String>,
}

fn bindir() -> PathBuf {
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let initdb = on_path
        .and_then(|p| std::fs::canonicalize(p).ok())
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin/initdb"));
    assert!(
        initdb.is_file(),
        "PostgreSQL's server binaries are needed (initdb not found); .ci/run's machines have them"
    );
    initdb.parent().expect("a directory").to_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

impl Postgres {
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        match &self.owner {
            Some(owner) => {
                let mut command = Command::new("runuser");
                command.args(["-u", owner, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// How clients reach it: by the name on its certificate, trusting its CA.
    pub fn server(&self) -> Server {
        Server {
            host: "localhost".into(),
            port: self.port,
            ca_pem: self.ca_pem.clone(),
            sslmode: SslMode::VerifyFull,
        }
    }

    /// The superuser.
    pub fn admin(&self) -> Login {
        Login {
            user: ADMIN.into(),
            password: self.admin_password.clone(),
        }
    }

    /// Starts a server; panics with PostgreSQL's log if it does not start.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let owner = is_root().then(|| ADMIN.to_owned());
        let mut server = Self {
            port: free_port(),
            admin_password: kflex::bootstrap::random::password(24).expect("a password"),
            ca_pem: Vec::new(),
            bindir: bindir(),
            dir,
            owner,
        };
        let lifetimes = Lifetimes {
            authority: Duration::from_secs(86_400),
            leaf: Duration::from_secs(86_400),
        };
        let tls = postgres_tls(
            None,
            &["localhost".to_owned()],
            lifetimes,
            time::OffsetDateTime::now_utc(),
        )
        .expect("certificates")
        .expect("new");
        for (key, file) in [
            ("ca.crt", "ca.crt"),
            ("tls.crt", "tls.crt"),
            ("tls.key", "tls.key"),
        ] {
            std::fs::write(server.path(file), &tls[key]).expect("written");
        }
        server.ca_pem = tls["ca.crt"].clone();
        std::fs::write(
            server.path("password"),
            format!("{}\n", server.admin_password),
        )
        .expect("written");
        std::fs::write(
            server.path("pg_hba.conf"),
            "local all all scram-sha-256\nhostssl all all all scram-sha-256\nhostnossl all all all reject\n",
        )
        .expect("written");
        set_mode(&server.path("tls.key"), 0o600);
        if let Some(owner) = &server.owner {
            let status = Command::new("chown")
                .args(["-R", &format!("{owner}:")])
                .arg(server.dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown to {owner}");
            set_mode(server.dir.path(), 0o755);
        }
        let data = server.path("data");
        let status = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", ADMIN, "-A", "scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", server.path("password").display()))
            .output()
            .expect("initdb runs");
        assert!(
            status.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let options = format!(
            "-c port={} -c listen_addresses=localhost -c unix_socket_directories={} -c ssl=on \
             -c ssl_cert_file={} -c ssl_key_file={} -c hba_file={} -c password_encryption=scram-sha-256 \
             -c fsync=off",
            server.port,
            server.dir.path().display(),
            server.path("tls.crt").display(),
            server.path("tls.key").display(),
            server.path("pg_hba.conf").display(),
        );
        let started = server
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(server.path("log"))
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl runs");
        let log = std::fs::read_to_string(server.path("log")).unwrap_or_default();
        assert!(started.status.success(), "PostgreSQL did not start:\n{log}");
        server
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.path("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
