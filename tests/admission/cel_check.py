"""The controller's ValidatingAdmissionPolicy, as `kflex render --system` renders it, evaluated with
cel-python against admission requests the controller could send: what it must admit (kflex's own
objects, hooks' namespaced RBAC) and what it must deny (hooks granting cluster-wide power, writes
outside control planes' namespaces, deleting kflex's own Secrets, moving objects between control
planes). No API server can run where the tests run; this is the closest check of the CEL itself.

Usage: cel_check.py OFF.yaml ON.yaml OPENSHIFT.yaml — the system manifests rendered with the
defaults, with allowClusterScopedHookRbac=true, and with isOpenShift=true. Exit 1 on any wrong
verdict or evaluation error. Run by tests/admission_policy.rs.
"""
import sys

import celpy
import yaml

def policy(path):
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("kind") == "ValidatingAdmissionPolicy":
            return doc
    raise SystemExit("no policy")

env = celpy.Environment()
CACHE = {}
def prog(expr):
    # cel-python lacks CEL's heterogeneous equality (a map compared with null); Kubernetes has it.
    expr = expr.replace("namespaceObject != null", "namespaceObjectPresent")
    if expr not in CACHE:
        CACHE[expr] = env.program(env.compile(expr))
    return CACHE[expr]

def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v

def evaluate(pol, req):
    req = {k: (strip(v) if k != "namespaceObject" or v is not None else v) for k, v in req.items()}
    act = {
        "request": celpy.json_to_cel(req["request"]),
        "object": celpy.json_to_cel(req.get("object")),
        "oldObject": celpy.json_to_cel(req.get("oldObject")),
        "namespaceObject": celpy.json_to_cel(req.get("namespaceObject")),
        "namespaceObjectPresent": celpy.celtypes.BoolType(req.get("namespaceObject") is not None),
    }
    spec = pol["spec"]
    for mc in spec["matchConditions"]:
        r = prog(mc["expression"]).evaluate(act)
        if r is not True and r != celpy.celtypes.BoolType(True):
            return ("nomatch", None)
    variables = {}
    for v in spec["variables"]:
        act["variables"] = celpy.celtypes.MapType({celpy.celtypes.StringType(k): val for k, val in variables.items()})
        try:
            val = prog(v["expression"]).evaluate(act)
        except celpy.CELEvalError as e:
            val = e
        variables[v["name"]] = val
    act["variables"] = celpy.celtypes.MapType({celpy.celtypes.StringType(k): val for k, val in variables.items()})
    denied = []
    for val in spec["validations"]:
        try:
            r = prog(val["expression"]).evaluate(act)
        except celpy.CELEvalError as e:
            r = e
        if isinstance(r, celpy.CELEvalError):
            denied.append("ERROR " + str(r) + " in: " + val["message"])
        elif not bool(r):
            denied.append(val["message"])
    return ("denied" if denied else "admitted", denied)

USER = "system:serviceaccount:kubeflex-system:kubeflex-controller-manager"
def request(op, group, resource, kind, obj=None, old=None, ns=None):
    ns_obj = None
    if ns is not None:
        labels = {} if ns in ("kubeflex-system", "default") else {"kflex.kubestellar.org/control-plane": ns.removesuffix("-system")}
        ns_obj = {"metadata": {"name": ns, "labels": labels}} if labels else {"metadata": {"name": ns}}
    return {"request": {"operation": op, "resource": {"group": group, "resource": resource, "version": "v1"},
                        "kind": {"kind": kind, "group": group, "version": "v1"},
                        "userInfo": {"username": USER}},
            "object": obj, "oldObject": old, "namespaceObject": ns_obj}

def meta(name, ns=None, cp="cp1", hook=None, labels=None):
    m = {"name": name}
    if ns: m["namespace"] = ns
    l = {} if cp is None else {"kflex.kubestellar.org/control-plane": cp}
    l.update(labels or {})
    if l: m["labels"] = l
    if hook: m["annotations"] = {"kflex.kubestellar.org/post-create-hook": hook}
    return m

RBAC = "rbac.authorization.k8s.io"
def cr(rules, hook="h", labels=None, extra=None):
    o = {"apiVersion": RBAC + "/v1", "kind": "ClusterRole", "metadata": meta("r", hook=hook, labels=labels), "rules": rules}
    o.update(extra or {})
    return request("CREATE", RBAC, "clusterroles", "ClusterRole", o)
def crb(role, subjects, hook="h", cp="cp1"):
    o = {"kind": "ClusterRoleBinding", "metadata": meta("b", hook=hook, cp=cp), "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": subjects}
    return request("CREATE", RBAC, "clusterrolebindings", "ClusterRoleBinding", o)
def rb(role_kind, role, subjects, hook="h", ns="cp1-system"):
    o = {"kind": "RoleBinding", "metadata": meta("b", ns=ns, hook=hook), "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role}, "subjects": subjects}
    return request("CREATE", RBAC, "rolebindings", "RoleBinding", o, ns=ns)
def sa(name, ns): return {"kind": "ServiceAccount", "name": name, "namespace": ns}
GET_NS = [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}]

def cm(ns, cp="cp1", name="c"):
    return {"kind": "ConfigMap", "metadata": meta(name, ns=ns, cp=cp)}

GW_LABEL = "kflex.kubestellar.org/control-plane-namespace"
GW = "gateway.networking.k8s.io"
def ns_create(name, labels, hook=None):
    return request("CREATE", "", "namespaces", "Namespace", {"kind": "Namespace", "metadata": meta(name, hook=hook, labels=labels)})
def tls_route(*parents, hook="h"):
    o = {"kind": "TLSRoute", "metadata": meta("r", ns="cp1-system", hook=hook),
         "spec": {"parentRefs": list(parents), "hostnames": ["cp2.localtest.me"], "rules": [{"backendRefs": [{"name": "s", "port": 443}]}]}}
    return request("CREATE", GW, "tlsroutes", "TLSRoute", o, ns="cp1-system")

def job(cp, args, kind="Job", init=False, field="args"):
    container = {"name": "restore", "image": "kflex", field: args}
    pod = {"containers": [container]}
    if init:
        pod = {"initContainers": [container], "containers": [{"name": "main", "image": "kflex"}]}
    spec = {"template": {"spec": pod}}
    if kind == "CronJob":
        spec = {"schedule": "@daily", "jobTemplate": {"spec": spec}}
    o = {"kind": kind, "metadata": meta("restore-" + (cp or "x"), ns="kubeflex-system", cp=cp), "spec": spec}
    return request("CREATE", "batch", kind.lower() + "s", kind, o, ns="kubeflex-system")

RESTORE = ["bootstrap", "backup", "restore", "--control-plane=cp1"]
restores = [
    # A restore Job reads its own control plane's backups; another's only where the setting
    # backup.allowedRestores says so (the "on" variant allows prod:staging).
    ("restore Job from its own backups", True, job("cp1", RESTORE + ["--from-control-plane=cp1"])),
    ("restore Job from cp2's backups", False, job("cp1", RESTORE + ["--from-control-plane=cp2"])),
    ("restore from cp2's backups in an init container", False, job("cp1", RESTORE + ["--from-control-plane=cp2"], init=True)),
    ("restore from cp2's backups in the command", False, job("cp1", ["kflex"] + RESTORE + ["--from-control-plane=cp2"], field="command")),
    ("CronJob restoring from cp2's backups", False, job("cp1", RESTORE + ["--from-control-plane=cp2"], kind="CronJob")),
    ("unlabelled restore Job", False, job(None, RESTORE + ["--from-control-plane=cp1"])),
    ("backup CronJob", True, job("cp1", ["bootstrap", "backup", "create", "--control-plane=cp1"], kind="CronJob")),
    ("prod restoring from staging", False, job("prod", RESTORE + ["--from-control-plane=staging"])),
    ("delete a restore Job", True, request("DELETE", "batch", "jobs", "Job", None, {"kind": "Job", "metadata": meta("restore-cp1", ns="kubeflex-system"), "spec": {"template": {"spec": {"containers": [{"name": "r", "args": ["--from-control-plane=cp2"]}]}}}}, ns="kubeflex-system")),
]

common = restores + [
    ("kflex's own host binding to cluster-admin", True, crb("cluster-admin", [sa("cp1", "cp1-system")], hook=None)),
    ("own binding cluster-admin to another SA", False, crb("cluster-admin", [sa("other", "cp1-system")], hook=None)),
    ("hook RoleBinding to admin for own SA", True, rb("ClusterRole", "admin", [sa("default", "cp1-system")])),
    ("hook RoleBinding to own Role for own SA", True, rb("Role", "r", [sa("x", "cp1-system")])),
    ("hook RoleBinding to a kubeflex-system SA", False, rb("Role", "r", [sa("kubeflex-controller-manager", "kubeflex-system")])),
    ("hook RoleBinding to cp2's SA", False, rb("Role", "r", [sa("x", "cp2-system")])),
    ("hook RoleBinding to a User", False, rb("Role", "r", [{"kind": "User", "name": "mallory", "apiGroup": RBAC}])),
    ("hook RoleBinding to an SA without namespace", False, rb("Role", "r", [{"kind": "ServiceAccount", "name": "x"}])),
    ("hook RoleBinding without subjects", False, rb("Role", "r", None)),
    ("kflex's own RoleBinding to db-cp1 in kubeflex-system", True, rb("Role", "kflex-database", [sa("db-cp1", "kubeflex-system")], hook=None)),
    ("own RoleBinding to a User", False, rb("Role", "r", [{"kind": "User", "name": "mallory", "apiGroup": RBAC}], hook=None)),
    ("labelled ConfigMap in kubeflex-system", True, request("CREATE", "", "configmaps", "ConfigMap", cm("kubeflex-system"), ns="kubeflex-system")),
    ("unlabelled ConfigMap in kubeflex-system", False, request("CREATE", "", "configmaps", "ConfigMap", cm("kubeflex-system", cp=None), ns="kubeflex-system")),
    ("ConfigMap in default", False, request("CREATE", "", "configmaps", "ConfigMap", cm("default"), ns="default")),
    ("ConfigMap in cp1-system", True, request("CREATE", "", "configmaps", "ConfigMap", cm("cp1-system"), ns="cp1-system")),
    ("unlabelled ConfigMap in cp1-system (taken over)", True, request("CREATE", "", "configmaps", "ConfigMap", cm("cp1-system", cp=None), ns="cp1-system")),
    ("delete the PostgreSQL password", False, request("DELETE", "", "secrets", "Secret", None, {"kind": "Secret", "metadata": meta("postgres-postgresql", ns="kubeflex-system", cp=None)}, ns="kubeflex-system")),
    ("delete an unlabelled Secret in cp2-system", False, request("DELETE", "", "secrets", "Secret", None, {"kind": "Secret", "metadata": meta("k8s-certs", ns="cp2-system", cp=None)}, ns="cp2-system")),
    ("delete db-cp1's Job", True, request("DELETE", "batch", "jobs", "Job", None, {"kind": "Job", "metadata": meta("db-cp1", ns="kubeflex-system")}, ns="kubeflex-system")),
    ("Lease in kubeflex-system", True, request("CREATE", "coordination.k8s.io", "leases", "Lease", {"kind": "Lease", "metadata": {"name": "kflex-controller", "namespace": "kubeflex-system"}}, ns="kubeflex-system")),
    ("Lease update in kubeflex-system", True, request("UPDATE", "coordination.k8s.io", "leases", "Lease", {"kind": "Lease", "metadata": {"name": "kflex-controller", "namespace": "kubeflex-system"}}, {"kind": "Lease", "metadata": {"name": "kflex-controller", "namespace": "kubeflex-system"}}, ns="kubeflex-system")),
    ("Lease in default", False, request("CREATE", "coordination.k8s.io", "leases", "Lease", {"kind": "Lease", "metadata": {"name": "x", "namespace": "default"}}, ns="default")),
    ("label moved cp1 -> cp2", False, request("UPDATE", "", "configmaps", "ConfigMap", cm("cp1-system", cp="cp2"), cm("cp1-system", cp="cp1"), ns="cp1-system")),
    ("label removed", False, request("UPDATE", "", "configmaps", "ConfigMap", cm("cp1-system", cp=None), cm("cp1-system", cp="cp1"), ns="cp1-system")),
    ("label kept", True, request("UPDATE", "", "configmaps", "ConfigMap", cm("cp1-system"), cm("cp1-system"), ns="cp1-system")),
    ("label added to an unlabelled object in cp1-system", True, request("UPDATE", "", "configmaps", "ConfigMap", cm("cp1-system"), cm("cp1-system", cp=None), ns="cp1-system")),
    ("cluster-scoped label moved", False, request("UPDATE", "", "namespaces", "Namespace", {"kind": "Namespace", "metadata": meta("cp1-system", cp="cp2")}, {"kind": "Namespace", "metadata": meta("cp1-system")})),
    ("Namespace create", True, request("CREATE", "", "namespaces", "Namespace", {"kind": "Namespace", "metadata": meta("cp1-system")})),
    ("Namespace delete", True, request("DELETE", "", "namespaces", "Namespace", None, {"kind": "Namespace", "metadata": meta("cp1-system")})),
    ("unlabelled Namespace delete", False, request("DELETE", "", "namespaces", "Namespace", None, {"kind": "Namespace", "metadata": meta("kube-system", cp=None)})),
    ("hook ClusterRole delete", True, request("DELETE", RBAC, "clusterroles", "ClusterRole", None, {"kind": "ClusterRole", "metadata": meta("r", hook="h"), "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]})),
    ("kflex's own ClusterRole (no hook annotation)", True, cr([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], hook=None)),
    # The label kflex's Gateway selects route namespaces by: only <cp>-system, valued <cp>.
    ("own namespace with the Gateway label", True, ns_create("cp1-system", {GW_LABEL: "cp1"})),
    ("own namespace with the Gateway label of cp2", False, ns_create("cp1-system", {GW_LABEL: "cp2"})),
    ("other namespace of cp1 with the Gateway label", False, ns_create("team-a", {GW_LABEL: "cp1"})),
    ("hook namespace with the Gateway label", False, ns_create("team-a", {GW_LABEL: "cp1"}, hook="h")),
    ("hook's cp1-system with the Gateway label", False, ns_create("cp1-system", {GW_LABEL: "cp1"}, hook="h")),
    ("ConfigMap with the Gateway label", False, request("CREATE", "", "configmaps", "ConfigMap", {"kind": "ConfigMap", "metadata": meta("c", ns="cp1-system", labels={GW_LABEL: "cp1"})}, ns="cp1-system")),
    ("label taken off the own namespace", True, request("UPDATE", "", "namespaces", "Namespace", {"kind": "Namespace", "metadata": meta("cp1-system")}, {"kind": "Namespace", "metadata": meta("cp1-system", labels={GW_LABEL: "cp1"})})),
    ("delete a namespace with the Gateway label", True, request("DELETE", "", "namespaces", "Namespace", None, {"kind": "Namespace", "metadata": meta("cp1-system", labels={GW_LABEL: "cp1"})})),
    # kflex's Gateway carries kflex's routes only.
    ("kflex's own TLSRoute to its Gateway", True, tls_route({"name": "kubeflex", "namespace": "kubeflex-system"}, hook=None)),
    ("hook TLSRoute to kflex's Gateway", False, tls_route({"name": "kubeflex", "namespace": "kubeflex-system"})),
    ("hook TLSRoute to kflex's Gateway, second parent", False, tls_route({"name": "mine"}, {"name": "kubeflex", "namespace": "kubeflex-system", "sectionName": "tls"})),
    ("hook TLSRoute to its own Gateway", True, tls_route({"name": "kubeflex"})),
    ("hook TLSRoute to another Gateway", True, tls_route({"name": "edge", "namespace": "gateways"})),
    ("hook TLSRoute delete", True, request("DELETE", GW, "tlsroutes", "TLSRoute", None, {"kind": "TLSRoute", "metadata": meta("r", ns="cp1-system", hook="h"), "spec": {"parentRefs": [{"name": "kubeflex", "namespace": "kubeflex-system"}]}}, ns="cp1-system")),
]
# A hook's ClusterRole is limited the same way under both settings (unbound, it grants nothing).
cluster_roles = [
    ("hook ClusterRole reading namespaces", True, cr(GET_NS)),
    ("hook ClusterRole update", True, request("UPDATE", RBAC, "clusterroles", "ClusterRole", {"kind": "ClusterRole", "metadata": meta("r", hook="h"), "rules": GET_NS}, {"kind": "ClusterRole", "metadata": meta("r", hook="h"), "rules": GET_NS})),
    ("hook ClusterRole without rules", True, cr(None)),
    ("hook ClusterRole nonResourceURLs", True, cr([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}])),
    ("verbs *", False, cr([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}])),
    ("apiGroups *", False, cr([{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}])),
    ("resources *", False, cr([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}])),
    ("resources pods/*", False, cr([{"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}])),
    ("nonResourceURLs *", False, cr([{"nonResourceURLs": ["/debug/*"], "verbs": ["get"]}])),
    ("escalate", False, cr([{"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["escalate"]}])),
    ("bind", False, cr([{"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["get", "bind"]}])),
    ("impersonate", False, cr([{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}])),
    ("second rule bad", False, cr(GET_NS + [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}])),
    ("aggregationRule", False, cr(None, extra={"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}})),
    ("aggregate-to-view label", False, cr(GET_NS, labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"})),
    ("aggregate-to-admin label", False, cr(GET_NS, labels={"rbac.authorization.k8s.io/aggregate-to-admin": "true"})),
    ("other label", True, cr(GET_NS, labels={"team": "a"})),
]
off = cluster_roles + [
    ("staging restoring from prod, not allowed", False, job("staging", RESTORE + ["--from-control-plane=prod"])),
    ("hook ClusterRoleBinding to own role", False, crb("kflex-check-cp1", [sa("check-cp1", "cp1-system")])),
    ("hook ClusterRoleBinding to view", False, crb("view", [sa("x", "cp1-system")])),
]
on = cluster_roles + [
    ("staging restoring from prod, allowed", True, job("staging", RESTORE + ["--from-control-plane=prod"])),
    ("staging restoring from another, not allowed", False, job("staging", RESTORE + ["--from-control-plane=dev"])),
    ("hook CRB to cluster-admin for own host SA", False, crb("cluster-admin", [sa("cp1", "cp1-system")])),
    ("hook CRB to admin", False, crb("admin", [sa("x", "cp1-system")])),
    ("hook CRB to edit", False, crb("edit", [sa("x", "cp1-system")])),
    ("hook CRB to view", False, crb("view", [sa("x", "cp1-system")])),
    ("hook CRB to system:node", False, crb("system:node", [sa("x", "cp1-system")])),
    ("hook CRB to own role", True, crb("kflex-check-cp1", [sa("check-cp1", "cp1-system")])),
    ("hook CRB to SA in cp2-system", False, crb("kflex-check-cp1", [sa("check-cp1", "cp2-system")])),
    ("hook CRB to SA in kubeflex-system", False, crb("kflex-check-cp1", [sa("kubeflex-controller-manager", "kubeflex-system")])),
    ("hook CRB to a Group", False, crb("kflex-check-cp1", [{"kind": "Group", "name": "system:authenticated", "apiGroup": RBAC}])),
    ("hook CRB one good one bad subject", False, crb("kflex-check-cp1", [sa("a", "cp1-system"), sa("b", "default")])),
    ("hook CRB unlabelled", False, crb("view", [sa("x", "cp1-system")], cp=None)),
]
openshift = [
    ("k3s privileged SCC binding", True, rb("ClusterRole", "system:openshift:scc:privileged", [sa("k3s-server", "cp1-system")], hook=None)),
    ("privileged SCC to another SA", False, rb("ClusterRole", "system:openshift:scc:privileged", [sa("x", "cp1-system")], hook=None)),
]
other_user = request("CREATE", "", "configmaps", "ConfigMap", cm("default"), ns="default")
other_user["request"]["userInfo"]["username"] = "admin"

failures = 0
off_path, on_path, openshift_path = sys.argv[1:4]
for path, cases in [(off_path, common + off), (on_path, common + on), (openshift_path, common + off + openshift)]:
    pol = policy(path)
    assert evaluate(pol, other_user)[0] == "nomatch"
    for name, admit, req in cases:
        result, why = evaluate(pol, req)
        ok = (result == "admitted") == admit
        errors = [w for w in (why or []) if w.startswith("ERROR")]
        if not ok or errors:
            failures += 1
            print(f"FAIL {path} {name}: {result} {why}")
        else:
            print(f"ok   {path}: {name}: {result}")
print("failures:", failures)
sys.exit(1 if failures else 0)
