"""Runs the TLSRoute health check of examples/argocd/tlsroute-health.yaml as Argo CD would — the
Lua script with the object as global `obj`, in Lua 5.1 (Argo CD's gopher-lua implements 5.1) —
on sample routes, each with the health it must get. Needs lupa (pinned and installed by
.ci/run). Exit 1 on any wrong verdict. Run by tests/argocd.rs.

Usage: tlsroute_health.py examples/argocd/tlsroute-health.yaml
"""
import sys

import yaml
from lupa import lua51

KEY = "resource.customizations.health.gateway.networking.k8s.io_TLSRoute"


def to_lua(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def health(script, route):
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, route)
    result = lua.execute(script)
    return result["status"], result["message"]


def route(generation, *parents):
    status = {"parents": list(parents)} if parents else None
    obj = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "TLSRoute",
           "metadata": {"name": "cp1", "namespace": "cp1-system", "generation": generation},
           "spec": {"hostnames": ["cp1.localtest.me"]}}
    if status is not None:
        obj["status"] = status
    return obj


def parent(name, *conditions):
    return {"parentRef": {"name": name, "namespace": "kubeflex-system"},
            "controllerName": "example.com/gateway", "conditions": list(conditions)}


def condition(type_, status, generation=None, reason="", message=""):
    c = {"type": type_, "status": status, "reason": reason, "message": message}
    if generation is not None:
        c["observedGeneration"] = generation
    return c


CASES = [
    ("no status yet", route(1), "Progressing"),
    ("a parent without conditions", route(1, parent("kubeflex")), "Progressing"),
    ("accepted", route(2, parent("kubeflex", condition("Accepted", "True", 2), condition("ResolvedRefs", "True", 2))), "Healthy"),
    ("accepted without observedGeneration", route(2, parent("kubeflex", condition("Accepted", "True"))), "Healthy"),
    ("accepted, but for an older generation", route(3, parent("kubeflex", condition("Accepted", "True", 2))), "Progressing"),
    ("refused", route(1, parent("kubeflex", condition("Accepted", "False", 1, "NotAllowedByListeners", "no listener admits it"))), "Degraded"),
    ("backend unresolved", route(1, parent("kubeflex", condition("Accepted", "True", 1), condition("ResolvedRefs", "False", 1, "BackendNotFound"))), "Degraded"),
    ("refused for an older generation", route(2, parent("kubeflex", condition("Accepted", "False", 1, "NotAllowedByListeners"))), "Progressing"),
    ("one parent refuses, another accepts", route(1, parent("a", condition("Accepted", "True", 1)), parent("b", condition("Accepted", "False", 1, "", "no"))), "Degraded"),
    ("unknown", route(1, parent("kubeflex", condition("Accepted", "Unknown", 1, "Pending"))), "Progressing"),
]

MESSAGES = {
    "refused": "Gateway kubeflex: no listener admits it",
    "backend unresolved": "Gateway kubeflex: BackendNotFound",
    "accepted": "accepted by Gateway kubeflex",
}


def main(path):
    with open(path) as f:
        script = yaml.safe_load(f)["data"][KEY]
    failures = 0
    for name, obj, expected in CASES:
        status, message = health(script, obj)
        wanted_message = MESSAGES.get(name)
        ok = status == expected and (wanted_message is None or message == wanted_message)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {status}: {message}")
        failures += not ok
    print("failures:", failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
