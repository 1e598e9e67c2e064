//! `kflex list`: the control planes of the hosting cluster and how they stand.

use kflex_core::api::conditions::{READY, SYNCED};
use kflex_core::api::{BackendDbType, ControlPlane, ControlPlaneType};
use kube::Api;
use serde::Serialize;

use super::session::{KubeconfigArgs, Session};
use crate::output::{print, print_line};

const EXAMPLES: &str = "Examples:
  kflex list
  kflex list -o wide                 # with each k8s control plane's backend and API servers
  kflex list -o json | jq -r '.[] | select(.ready != \"True\") | .name'";

/// List the control planes of the hosting cluster
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ListArgs {
    /// Output format; wide adds BACKEND and REPLICAS; json and yaml are stable for scripts (no
    /// ages, timestamps instead)
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Wide,
    Json,
    Yaml,
}

/// One control plane, as `-o json|yaml` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Row {
    name: String,
    #[serde(rename = "type")]
    type_: String,
    /// Type k8s: `shared` or `dedicated`; empty for the types without a database.
    backend: String,
    /// Type k8s: `spec.replicas`; `None` when the setting `k8s.replicas` decides.
    replicas: Option<i32>,
    synced: String,
    ready: String,
    /// Why it is not Ready or not Synced; empty when it is both.
    message: String,
    created: Option<String>,
}

impl Row {
    fn of(cp: &ControlPlane) -> Self {
        let status = |type_: &str| {
            cp.condition(type_)
                .map_or_else(|| "Unknown".to_owned(), |c| c.status.clone())
        };
        let message = [SYNCED, READY]
            .iter()
            .filter_map(|type_| cp.condition(type_))
            .filter(|c| c.status != "True")
            .map(|c| format!("{}: {}", c.reason, c.message))
            .collect::<Vec<_>>()
            .join("; ");
        let k8s = cp.spec.type_ == ControlPlaneType::K8s;
        Self {
            name: cp.metadata.name.clone().unwrap_or_default(),
            type_: cp.spec.type_.as_str().to_owned(),
            // Absent means shared, as for every KubeFlex object.
            backend: if k8s {
                cp.spec
                    .backend
                    .unwrap_or(BackendDbType::Shared)
                    .as_str()
                    .to_owned()
            } else {
                String::new()
            },
            replicas: if k8s { cp.spec.replicas } else { None },
            synced: status(SYNCED),
            ready: status(READY),
            message,
            created: cp
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|time| time.0.to_string()),
        }
    }
}

/// `5d`, `3h12m`, `4m`, `12s`, like kubectl's AGE.
pub(crate) fn age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h{}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d", seconds / 86400),
    }
}

/// The table, with columns as wide as their widest value; `wide` adds BACKEND and REPLICAS
/// (`-` for the types without a database or with one API server at most, `default` when the
/// setting `k8s.replicas` decides).
pub(crate) fn table(rows: &[Row], now: i64, created: &[Option<i64>], wide: bool) -> String {
    let name_width = rows
        .iter()
        .map(|row| row.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut text = format!(
        "{:<name_width$}  {:<7}  {:<7}  {:<8}  ",
        "NAME", "SYNCED", "READY", "TYPE"
    );
    if wide {
        text.push_str(&format!("{:<9}  {:<8}  ", "BACKEND", "REPLICAS"));
    }
    text.push_str("AGE\n");
    for (row, created) in rows.iter().zip(created) {
        let age = created.map_or_else(|| "-".to_owned(), |created| age(now - created));
        text.push_str(&format!(
            "{:<name_width$}  {:<7}  {:<7}  {:<8}  ",
            row.name, row.synced, row.ready, row.type_
        ));
        if wide {
            let backend = if row.backend.is_empty() {
                "-"
            } else {
                &row.backend
            };
            let replicas = match (row.replicas, row.backend.is_empty()) {
                (Some(replicas), _) => replicas.to_string(),
                (None, false) => "default".to_owned(),
                (None, true) => "-".to_owned(),
            };
            text.push_str(&format!("{backend:<9}  {replicas:<8}  "));
        }
        text.push_str(&format!("{age}\n"));
    }
    text
}

pub(crate) fn run(args: ListArgs) -> anyhow::Result<()> {
    let session = Session::load(&args.kubeconfig)?;
    let runtime = super::runtime()?;
    let mut control_planes = runtime.block_on(async {
        let (context, client) = session.hosting_client().await?;
        let api: Api<ControlPlane> = Api::all(client);
        api.list(&Default::default())
            .await
            .map_err(|err| {
                super::reach::on_kflex_api(
                    err,
                    format!("listing ControlPlanes (hosting context {context:?})"),
                )
            })
            .map(|list| list.items)
    })?;
    control_planes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let rows: Vec<Row> = control_planes.iter().map(Row::of).collect();
    match args.output {
        Format::Json => print_line(&serde_json::to_string_pretty(&rows)?)?,
        Format::Yaml => {
            let value = serde_json::to_value(&rows)?;
            print(&kflex_core::manifest::to_yaml_document(&value)?)?;
        }
        Format::Table | Format::Wide if rows.is_empty() => {
            eprintln!("No control planes found.");
        }
        Format::Table | Format::Wide => {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let created: Vec<Option<i64>> = control_planes
                .iter()
                .map(|cp| {
                    cp.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|time| time.0.as_second())
                })
                .collect();
            print(&table(&rows, now, &created, args.output == Format::Wide))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectls() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(age(5 * 86400 + 7), "5d");
    }
}
