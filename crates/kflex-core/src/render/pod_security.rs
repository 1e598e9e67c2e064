//! The Pod Security Standards, evaluated offline on rendered pod specs.
//!
//! kflex labels each `<cp>-system` namespace with the strictest level every pod in it meets:
//! `restricted` for kflex's own pods, lower only when a workload (a hook's, or k3s) needs it — and
//! then the namespace says why in an annotation, so the exception is reviewed, not hidden.
//! The checks follow the Pod Security Standards of Kubernetes 1.33 ("latest" policy).

use serde_json::{Map, Value};

use crate::manifest::Manifest;

/// A Pod Security level, ordered from least to most secure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

/// One broken rule: the pod meets at most `allows` because of `field`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub allows: Level,
    pub field: String,
    pub reason: String,
}

/// The pod spec inside a workload, with its path, for the kinds that carry one.
pub fn pod_spec(manifest: &Manifest) -> Option<(&'static str, &Map<String, Value>)> {
    let path = match (manifest.group(), manifest.kind()) {
        ("", "Pod") => "/spec",
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => "/spec/template/spec",
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    };
    let mut current = manifest.object();
    for part in path.trim_start_matches('/').split('/') {
        current = current.get(part)?.as_object()?;
    }
    Some((path, current))
}

/// The level `violations` leave a pod at.
pub fn level_of(violations: &[Violation]) -> Level {
    violations
        .iter()
        .map(|v| v.allows)
        .min()
        .unwrap_or(Level::Restricted)
}

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

const RESTRICTED_VOLUME_TYPES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

const SELINUX_TYPES: [&str; 4] = [
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Every rule `spec` breaks.
pub fn check(spec: &Map<String, Value>) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut flag = |allows: Level, field: String, reason: &str| {
        found.push(Violation {
            allows,
            field,
            reason: reason.to_owned(),
        });
    };
    let pod_ctx = spec.get("securityContext").and_then(Value::as_object);
    let pod_get = |key: &str| pod_ctx.and_then(|c| c.get(key));

    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(host) == Some(&Value::Bool(true)) {
            flag(
                Level::Privileged,
                host.to_owned(),
                "host namespaces are not allowed",
            );
        }
    }
    if let Some(Value::Array(volumes)) = spec.get("volumes") {
        for (i, volume) in volumes.iter().enumerate() {
            let Some(volume) = volume.as_object() else {
                continue;
            };
            let name = volume
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            for key in volume.keys().filter(|k| k.as_str() != "name") {
                let field = format!("volumes[{i}] ({name}).{key}");
                if key == "hostPath" {
                    flag(Level::Privileged, field, "hostPath volumes are not allowed");
                } else if !RESTRICTED_VOLUME_TYPES.contains(&key.as_str()) {
                    flag(
                        Level::Baseline,
                        field,
                        "this volume type is not allowed by restricted",
                    );
                }
            }
        }
    }
    if let Some(Value::Array(sysctls)) = pod_get("sysctls") {
        for sysctl in sysctls {
            let name = sysctl
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !SAFE_SYSCTLS.contains(&name) {
                flag(
                    Level::Privileged,
                    format!("securityContext.sysctls ({name})"),
                    "unsafe sysctl",
                );
            }
        }
    }
    check_common(pod_ctx, "securityContext", &mut flag);
    let pod_non_root = pod_get("runAsNonRoot") == Some(&Value::Bool(true));
    let pod_seccomp = seccomp_type(pod_ctx);
    if pod_get("runAsUser").and_then(Value::as_i64) == Some(0) {
        flag(
            Level::Baseline,
            "securityContext.runAsUser".to_owned(),
            "must not be 0 (root)",
        );
    }

    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(Value::Array(containers)) = spec.get(list) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let at = format!("{list}[{i}] ({name})");
            let ctx = container.get("securityContext").and_then(Value::as_object);
            let get = |key: &str| ctx.and_then(|c| c.get(key));
            let field = |rest: &str| format!("{at}.securityContext.{rest}");
            if get("privileged") == Some(&Value::Bool(true)) {
                flag(
                    Level::Privileged,
                    field("privileged"),
                    "privileged containers are not allowed",
                );
            }
            if let Some(Value::Array(ports)) = container.get("ports")
                && ports
                    .iter()
                    .any(|p| p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) != 0)
            {
                flag(
                    Level::Privileged,
                    format!("{at}.ports"),
                    "hostPort is not allowed",
                );
            }
            check_common(ctx, &format!("{at}.securityContext"), &mut flag);
            let caps = get("capabilities");
            let added: Vec<&str> = caps
                .and_then(|c| c.get("add"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if added.iter().any(|cap| !BASELINE_CAPABILITIES.contains(cap)) {
                flag(
                    Level::Privileged,
                    field("capabilities.add"),
                    "adds a capability baseline forbids",
                );
            } else if added.iter().any(|cap| *cap != "NET_BIND_SERVICE") {
                flag(
                    Level::Baseline,
                    field("capabilities.add"),
                    "may add only NET_BIND_SERVICE",
                );
            }
            let drops_all = caps
                .and_then(|c| c.get("drop"))
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|cap| cap == "ALL"));
            if !drops_all {
                flag(
                    Level::Baseline,
                    field("capabilities.drop"),
                    "must drop ALL capabilities",
                );
            }
            if get("allowPrivilegeEscalation") != Some(&Value::Bool(false)) {
                flag(
                    Level::Baseline,
                    field("allowPrivilegeEscalation"),
                    "must be false",
                );
            }
            match get("runAsNonRoot") {
                Some(Value::Bool(false)) => {
                    flag(Level::Baseline, field("runAsNonRoot"), "must not be false");
                }
                Some(Value::Bool(true)) => {}
                _ if pod_non_root => {}
                _ => flag(
                    Level::Baseline,
                    field("runAsNonRoot"),
                    "must be true (here or on the pod)",
                ),
            }
            if get("runAsUser").and_then(Value::as_i64) == Some(0) {
                flag(Level::Baseline, field("runAsUser"), "must not be 0 (root)");
            }
            match seccomp_type(ctx) {
                Some("RuntimeDefault" | "Localhost") => {}
                None if matches!(pod_seccomp, Some("RuntimeDefault" | "Localhost")) => {}
                Some("Unconfined") => {}
                _ => flag(
                    Level::Baseline,
                    field("seccompProfile"),
                    "must be RuntimeDefault or Localhost (here or on the pod)",
                ),
            }
        }
    }
    found
}

/// Rules that apply to both pod and container security contexts.
fn check_common(
    ctx: Option<&Map<String, Value>>,
    at: &str,
    flag: &mut impl FnMut(Level, String, &str),
) {
    let Some(ctx) = ctx else { return };
    if ctx.get("windowsOptions").and_then(|w| w.get("hostProcess")) == Some(&Value::Bool(true)) {
        flag(
            Level::Privileged,
            format!("{at}.windowsOptions.hostProcess"),
            "host processes are not allowed",
        );
    }
    if seccomp_type(Some(ctx)) == Some("Unconfined") {
        flag(
            Level::Privileged,
            format!("{at}.seccompProfile"),
            "Unconfined is not allowed",
        );
    }
    if ctx
        .get("appArmorProfile")
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        == Some("Unconfined")
    {
        flag(
            Level::Privileged,
            format!("{at}.appArmorProfile"),
            "Unconfined is not allowed",
        );
    }
    if let Some(selinux) = ctx.get("seLinuxOptions").and_then(Value::as_object) {
        let type_ok = selinux
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(|t| t.is_empty() || SELINUX_TYPES.contains(&t));
        let user_role_unset = ["user", "role"].iter().all(|k| {
            selinux
                .get(*k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        });
        if !type_ok || !user_role_unset {
            flag(
                Level::Privileged,
                format!("{at}.seLinuxOptions"),
                "custom SELinux options are not allowed",
            );
        }
    }
    if ctx
        .get("procMount")
        .and_then(Value::as_str)
        .is_some_and(|m| m != "Default")
    {
        flag(
            Level::Privileged,
            format!("{at}.procMount"),
            "must be Default",
        );
    }
}

fn seccomp_type(ctx: Option<&Map<String, Value>>) -> Option<&str> {
    ctx?.get("seccompProfile")?.get("type")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn restricted_container() -> Value {
        json!({"name": "c", "image": "x", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}})
    }

    #[test]
    fn a_hardened_pod_is_restricted() {
        let s = spec(
            json!({"containers": [restricted_container()], "volumes": [{"name": "v", "secret": {"secretName": "s"}}]}),
        );
        assert_eq!(check(&s), []);
    }

    #[test]
    fn pod_level_settings_count_for_every_container() {
        let s = spec(json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}));
        assert_eq!(check(&s), []);
    }

    #[test]
    fn a_plain_busybox_job_is_baseline() {
        let s = spec(
            json!({"restartPolicy": "Never", "containers": [{"name": "hello", "image": "busybox"}]}),
        );
        let violations = check(&s);
        assert_eq!(level_of(&violations), Level::Baseline);
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "containers[0] (hello).securityContext.capabilities.drop",
                "containers[0] (hello).securityContext.allowPrivilegeEscalation",
                "containers[0] (hello).securityContext.runAsNonRoot",
                "containers[0] (hello).securityContext.seccompProfile",
            ]
        );
    }

    #[test]
    fn privileged_things_are_privileged() {
        for s in [
            json!({"hostNetwork": true, "containers": [restricted_container()]}),
            json!({"containers": [{"name": "c", "securityContext": {"privileged": true}}]}),
            json!({"containers": [restricted_container()], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
            json!({"containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}),
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
            json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [restricted_container()]}),
        ] {
            assert_eq!(level_of(&check(&spec(s.clone()))), Level::Privileged, "{s}");
        }
    }

    #[test]
    fn root_and_escalation_break_restricted() {
        let mut c = restricted_container();
        c["securityContext"]["runAsUser"] = json!(0);
        assert_eq!(
            level_of(&check(&spec(json!({"containers": [c]})))),
            Level::Baseline
        );
        let mut c = restricted_container();
        c["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        assert_eq!(
            level_of(&check(&spec(
                json!({"initContainers": [c], "containers": [restricted_container()]})
            ))),
            Level::Baseline
        );
    }

    #[test]
    fn workloads_expose_their_pod_spec() {
        let job = Manifest::new(
            "t",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": []}}}}),
        )
        .unwrap();
        assert_eq!(pod_spec(&job).unwrap().0, "/spec/template/spec");
        let cm = Manifest::new(
            "t",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        )
        .unwrap();
        assert!(pod_spec(&cm).is_none());
    }
}
