//! `kflex bootstrap database`: the control plane's role and database in a PostgreSQL server and
//! kine's Secret in `<cp>-system`; `--drop` removes role and database.
//!
//! The server and admin account come from flags and files (`--host`, `--admin-password-file`,
//! `--ca-file`: a server kflex runs), or all from one directory where an existing server's
//! Secret is mounted (`--server-dir`: keys `host`, `port`, `username`, `password`, optional
//! `sslmode` and `ca.crt`). Either way no secret is on the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use super::{client, labels, read_file, report};
use crate::bootstrap::database::{self, Login, Server, SslMode, Target};
use crate::bootstrap::secrets::KubeSecrets;

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The control plane.
    #[arg(long)]
    control_plane: String,
    /// The PostgreSQL server's DNS name (verified against its certificate).
    #[arg(long, required_unless_present = "server_dir")]
    host: Option<String>,
    #[arg(long, default_value_t = 5432, conflicts_with = "server_dir")]
    port: u16,
    #[arg(long, default_value = "postgres", conflicts_with = "server_dir")]
    admin_user: String,
    /// A file holding the admin password (a mounted Secret key).
    #[arg(long, required_unless_present = "server_dir")]
    admin_password_file: Option<PathBuf>,
    /// A file holding the CA certificate the server's certificate chains to.
    #[arg(long, required_unless_present = "server_dir")]
    ca_file: Option<PathBuf>,
    /// A directory holding an existing server's Secret, one file per key (host, port,
    /// username, password, optional sslmode and ca.crt), instead of the flags above.
    #[arg(long, conflicts_with_all = ["host", "admin_password_file", "ca_file"])]
    server_dir: Option<PathBuf>,
    /// The control plane's database.
    #[arg(long)]
    database: String,
    /// The control plane's role.
    #[arg(long)]
    role: String,
    /// Namespace of kine's Secret, `<cp>-system`.
    #[arg(long)]
    secret_namespace: String,
    /// kine's Secret (keys host, port, user, password, database, sslmode, ca.crt).
    #[arg(long, default_value = "kine-datastore")]
    secret: String,
    /// Remove the database (closing its connections) and the role instead.
    #[arg(long)]
    drop: bool,
}

/// The files directly in `dir` (a mounted Secret: its keys, plus the kubelet's `..data` links,
/// which start with dots and are skipped).
fn secret_files(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || !entry.path().is_file() {
            continue;
        }
        files.insert(name, read_file(&entry.path())?);
    }
    Ok(files)
}

/// The server and admin account the arguments name.
fn server_and_admin(args: &DatabaseArgs) -> anyhow::Result<(Server, Login)> {
    if let Some(dir) = &args.server_dir {
        let described = format!("mounted at {}", dir.display());
        return database::external_server(
            &described,
            &secret_files(dir)?,
            database::system_roots_pem,
        );
    }
    let (Some(host), Some(password_file), Some(ca_file)) =
        (&args.host, &args.admin_password_file, &args.ca_file)
    else {
        anyhow::bail!("--host, --admin-password-file and --ca-file, or --server-dir, are required");
    };
    let password = read_file(password_file)?;
    let password = String::from_utf8(password)
        .with_context(|| format!("{} is not UTF-8", password_file.display()))?;
    Ok((
        Server {
            host: host.clone(),
            port: args.port,
            ca_pem: read_file(ca_file)?,
            sslmode: SslMode::VerifyFull,
        },
        Login {
            user: args.admin_user.clone(),
            password: password.trim_end_matches(['\n', '\r']).to_owned(),
        },
    ))
}

pub async fn run(args: DatabaseArgs) -> anyhow::Result<()> {
    let (server, admin) = server_and_admin(&args)?;
    let target = Target {
        database: args.database.clone(),
        role: args.role.clone(),
    };
    if args.drop {
        let dropped = database::drop(&server, &admin, &target).await?;
        let said = |existed: bool| if existed { "dropped" } else { "already absent" };
        eprintln!(
            "database {:?} on {}: {}",
            args.database,
            server.address(),
            said(dropped.database)
        );
        eprintln!(
            "role {:?} on {}: {}",
            args.role,
            server.address(),
            said(dropped.role)
        );
        return Ok(());
    }
    let store = KubeSecrets::new(client().await?, &args.secret_namespace);
    let done = database::ensure(
        &server,
        &admin,
        &target,
        &store,
        &args.secret,
        &labels(Some(&args.control_plane)),
    )
    .await?;
    let said = |created: bool| if created { "created" } else { "exists" };
    eprintln!(
        "role {:?} on {}: {}",
        args.role,
        server.address(),
        said(done.role_created)
    );
    eprintln!(
        "database {:?} on {}: {}",
        args.database,
        server.address(),
        said(done.database_created)
    );
    if done.password_set {
        eprintln!(
            "role {:?}: password set to the one in the Secret",
            args.role
        );
    }
    if let Some(outcome) = done.secret {
        report("Secret", &args.secret_namespace, &args.secret, outcome);
    }
    Ok(())
}
