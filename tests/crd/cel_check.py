"""The ControlPlane CRD's validation, as `kflex crds` generates it, evaluated without an API server:
the OpenAPI bounds kflex relies on (minimum, maximum, enum, pattern, maxLength, maxItems) and
every x-kubernetes-validations rule, with cel-python. Transition rules (those naming oldSelf) run
only when a case gives the old object, as the API server runs them only on updates.

Usage: cel_check.py CRDS.yaml CASES.json — CASES is a list of {"name", "object", "old"?}. Prints
one JSON line per case: {"name", "refusals": [{"path", "message"}]}. Exit 1 on an evaluation
error (a rule cel-python cannot run is a finding, not a pass). Run by tests/crd_rules.rs.
"""
import json
import re
import sys

import celpy
import yaml

env = celpy.Environment()
CACHE = {}


def program(expression):
    if expression not in CACHE:
        CACHE[expression] = env.program(env.compile(expression))
    return CACHE[expression]


def schema_of(path):
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == "ControlPlane":
            return doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise SystemExit("no ControlPlane CRD")


def bounds(schema, value, path, out):
    """The OpenAPI checks on one value."""
    if value is None:
        return
    if "enum" in schema and value not in schema["enum"]:
        out.append({"path": path, "message": f"must be one of {schema['enum']}"})
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append({"path": path, "message": f"should be greater than or equal to {schema['minimum']}"})
        if "maximum" in schema and value > schema["maximum"]:
            out.append({"path": path, "message": f"should be less than or equal to {schema['maximum']}"})
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append({"path": path, "message": f"may not be longer than {schema['maxLength']}"})
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append({"path": path, "message": f"should match {schema['pattern']!r}"})
    if isinstance(value, list) and "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append({"path": path, "message": f"must have at most {schema['maxItems']} items"})


def check(schema, value, old, path, out):
    bounds(schema, value, path, out)
    for rule in schema.get("x-kubernetes-validations", []):
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        result = program(rule["rule"]).evaluate(activation)
        if isinstance(result, celpy.CELEvalError):
            raise SystemExit(f"evaluating {rule['rule']!r} at {path or '<root>'}: {result}")
        if not bool(result):
            where = path + rule["fieldPath"] if "fieldPath" in rule else path
            out.append({"path": where, "message": rule.get("message", rule["rule"])})
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                child_old = old.get(name) if isinstance(old, dict) else None
                check(sub, value[name], child_old, f"{path}.{name}" if path else name, out)


schema = schema_of(sys.argv[1])
for case in json.load(open(sys.argv[2])):
    refusals = []
    check(schema, case["object"], case.get("old"), "", refusals)
    print(json.dumps({"name": case["name"], "refusals": refusals}))
