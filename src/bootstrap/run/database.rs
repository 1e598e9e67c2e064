//! `kflex bootstrap database`: the control plane's role and database in the shared PostgreSQL
//! and kine's Secret in `<cp>-system`; `--drop` removes role and database.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{client, labels, read_file, report};
use crate::bootstrap::database::{self, Login, Server, Target};
use crate::bootstrap::secrets::KubeSecrets;

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The control plane.
    #[arg(long)]
    control_plane: String,
    /// The PostgreSQL server's DNS name (verified against its certificate).
    #[arg(long)]
    host: String,
    #[arg(long, default_value_t = 5432)]
    port: u16,
    #[arg(long, default_value = "postgres")]
    admin_user: String,
    /// A file holding the admin password (a mounted Secret key).
    #[arg(long)]
    admin_password_file: PathBuf,
    /// A file holding the CA certificate the server's certificate chains to.
    #[arg(long)]
    ca_file: PathBuf,
    /// The control plane's database.
    #[arg(long)]
    database: String,
    /// The control plane's role.
    #[arg(long)]
    role: String,
    /// Namespace of kine's Secret, `<cp>-system`.
    #[arg(long)]
    secret_namespace: String,
    /// kine's Secret (keys host, port, user, password, database, ca.crt).
    #[arg(long, default_value = "kine-datastore")]
    secret: String,
    /// Remove the database (closing its connections) and the role instead.
    #[arg(long)]
    drop: bool,
}

pub async fn run(args: DatabaseArgs) -> anyhow::Result<()> {
    let password = read_file(&args.admin_password_file)?;
    let password = String::from_utf8(password)
        .with_context(|| format!("{} is not UTF-8", args.admin_password_file.display()))?;
    let admin = Login {
        user: args.admin_user.clone(),
        password: password.trim_end_matches(['\n', '\r']).to_owned(),
    };
    let server = Server {
        host: args.host.clone(),
        port: args.port,
        ca_pem: read_file(&args.ca_file)?,
    };
    let target = Target {
        database: args.database.clone(),
        role: args.role.clone(),
    };
    if args.drop {
        let dropped = database::drop(&server, &admin, &target).await?;
        let said = |existed: bool| if existed { "dropped" } else { "already absent" };
        eprintln!("database {:?}: {}", args.database, said(dropped.database));
        eprintln!("role {:?}: {}", args.role, said(dropped.role));
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
    eprintln!("role {:?}: {}", args.role, said(done.role_created));
    eprintln!(
        "database {:?}: {}",
        args.database,
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
