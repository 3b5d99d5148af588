"""Validates wif-push's deployment files (deploy/) as the tests need: Kubernetes objects against
Kubernetes' own schemas (kubernetes-validate, strict: unknown fields refused), SpinApps against
SpinKube's CRD and against spin.toml, wadm applications against wadm's schema (both schemas kept
in deploy/schemas/), the Dockerfile's contract with those manifests, and Spin's runtime
configuration.

    manifests.py check FILE...   one line per document: "ok FILE KIND/NAME", or
                                 "FILE: KIND/NAME: at FIELD: PROBLEM"; exit 1 on any problem
    manifests.py json FILE       the documents of a YAML file as a JSON list
"""
import copy
import json
import pathlib
import sys
import tomllib
from importlib import resources

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "deploy" / "schemas"
# The oldest Kubernetes the manifests need: native sidecars and backoffLimitPerIndex.
KUBERNETES = "1.33.0"
# kubernetes-validate's schemas carry no enumerations; these fields' values are checked here.
ENUMS = {
    "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
    "restartPolicy": {"Always", "OnFailure", "Never"},
    "completionMode": {"NonIndexed", "Indexed"},
    "podReplacementPolicy": {"TerminatingOrFailed", "Failed"},
    "protocol": {"TCP", "UDP", "SCTP"},
    "policyTypes": {"Ingress", "Egress"},
}
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
DEFINITIONS = "https://kubernetes.io/api/_definitions.json"


def where(path):
    return ".".join(str(p) for p in path) or "(the document)"


def enum_problems(node, path=()):
    problems = []
    if isinstance(node, dict):
        for key, value in node.items():
            allowed = ENUMS.get(key)
            values = value if isinstance(value, list) else [value]
            for v in values:
                if allowed and isinstance(v, str) and v not in allowed:
                    problems.append((path + (key,), "%r is not one of %s" % (v, sorted(allowed))))
            problems += enum_problems(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += enum_problems(value, path + (i,))
    return problems


def kubernetes(doc):
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [(tuple(e.path), e.message)]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [((), e.message)]
    return enum_problems(doc)


def structural(node, strict=True):
    """A CRD's OpenAPI v3 (structural) schema as JSON Schema 2020-12. `strict` closes objects
    that list their properties (the API server prunes unknown fields; a test must see them)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: structural(v, strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, strict)
        elif key in ("anyOf", "allOf", "oneOf"):
            # These only restate constraints of fields declared elsewhere.
            out[key] = [structural(v, strict=False) for v in value]
        elif key == "not":
            out[key] = structural(value, strict=False)
        elif key != "description":
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("type") == "integer" and node.get("format") in ("int32", "int64"):
        low, high = INT32 if node["format"] == "int32" else INT64
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (strict and "properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        for field in ("apiVersion", "kind"):
            props.setdefault(field, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    return out


def crd_validator(path):
    (crd,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    (version,) = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
    schema = structural(version["schema"]["openAPIV3Schema"])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"const": "%s/%s" % (crd["spec"]["group"], version["name"])}
    props["kind"] = {"const": crd["spec"]["names"]["kind"]}
    # metadata as the API server checks it: Kubernetes' own ObjectMeta, strict.
    props["metadata"] = {"$ref": DEFINITIONS + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    props.pop("status", None)  # the operator's to write
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    definitions = json.loads((base / ("v%s-local-strict" % KUBERNETES) / "_definitions.json").read_text())
    registry = Registry().with_resource(DEFINITIONS, Resource.from_contents(definitions))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def wadm_validator():
    """wadm's schema, tightened where its generated form accepts anything: a trait's
    properties by the trait's type, apiVersion and kind pinned, no unknown component keys."""
    schema = copy.deepcopy(json.loads((SCHEMAS / "wasmcloud" / "oam.schema.json").read_text()))
    schema["properties"]["apiVersion"] = {"const": "core.oam.dev/v1beta1"}
    schema["properties"]["kind"] = {"const": "Application"}
    d = schema["definitions"]
    d["Trait"]["allOf"] = [
        {"if": {"properties": {"type": {"enum": ["spreadscaler", "daemonscaler"]}}},
         "then": {"properties": {"properties": {"$ref": "#/definitions/SpreadScalerProperty"}}}},
        {"if": {"properties": {"type": {"const": "link"}}},
         "then": {"properties": {"properties": {"$ref": "#/definitions/LinkProperty"}}}},
        {"properties": {"type": {"enum": ["spreadscaler", "daemonscaler", "link"]}}},
    ]
    component = d["Component"]
    component.pop("oneOf")
    component["properties"]["type"] = {"enum": ["component", "capability"]}
    component["properties"]["properties"] = {}
    component["required"] = ["name", "type", "properties"]
    component["additionalProperties"] = False
    component["allOf"] = [
        {"if": {"properties": {"type": {"const": "component"}}},
         "then": {"properties": {"properties": {"$ref": "#/definitions/ComponentProperties"}}}},
        {"if": {"properties": {"type": {"const": "capability"}}},
         "then": {"properties": {"properties": {"$ref": "#/definitions/CapabilityProperties"}}}},
    ]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def wadm_problems(doc):
    """What wasmCloud would pass on silently: the component without the links it needs."""
    component = next((c for c in doc["spec"]["components"] if c["type"] == "component"), None)
    if component is None:
        return [(("spec", "components"), "no component")]
    links = {(t["properties"].get("package"), interface)
             for t in component.get("traits", []) if t["type"] == "link"
             for interface in t["properties"].get("interfaces", [])}
    reached = any(
        t["type"] == "link" and (t["properties"].get("target") or {}).get("name") == component["name"]
        for c in doc["spec"]["components"] for t in c.get("traits", []))
    problems = []
    for package, interface, why in [
        ("http", "outgoing-handler", "it could not reach Google"),
        ("keyvalue", "store", "its instances could not share a token"),
    ]:
        if (package, interface) not in links:
            problems.append((("spec", "components", 0, "traits"),
                             "no link to wasi:%s/%s: %s" % (package, interface, why)))
    if not reached:
        problems.append((("spec", "components"),
                         "no HTTP server links to %s: nothing could reach it" % component["name"]))
    return problems


def schema_problems(validator, doc):
    errors = list(validator.iter_errors(doc))
    if not errors:
        return []
    best = jsonschema.exceptions.best_match(errors)
    return [(tuple(best.absolute_path), best.message[:300])]


def spin_variables():
    return tomllib.loads((ROOT / "spin.toml").read_text())


def spinapp_problems(doc):
    """What SpinKube would pass on silently: a variable spin.toml does not declare (ignored),
    a required one left unset, a key-value store the component is not granted."""
    manifest = spin_variables()
    declared = manifest["variables"]
    problems = []
    given = [v.get("name") for v in doc["spec"].get("variables", [])]
    for i, name in enumerate(given):
        if name not in declared:
            problems.append((("spec", "variables", i, "name"),
                             "%r is not a variable of spin.toml (Spin would ignore it)" % name))
    for name, spec in declared.items():
        if spec.get("required") and name not in given:
            problems.append((("spec", "variables"), "spin.toml's required variable %r is not set" % name))
    granted = set(manifest["component"]["wif-push"].get("key_value_stores", []))
    for i, store in enumerate(doc["spec"].get("runtimeConfig", {}).get("keyValueStores", [])):
        if store.get("name") not in granted:
            problems.append((("spec", "runtimeConfig", "keyValueStores", i, "name"),
                             "%r is not a store spin.toml grants (%s)" % (store.get("name"), sorted(granted))))
    return problems


def dockerfile_problems(path):
    """The image's contract with the manifests: a non-root user, host-test as the entry point
    with the component it COPYs, the directories the manifests mount, owned by that user."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(str(path))
    final = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            final = []
        final.append(instruction)
    problems = []

    def last(name):
        found = [i["value"] for i in final if i["instruction"] == name]
        return found[-1] if found else None

    user = last("USER")
    uid = (user or "").split(":")[0]
    if not uid.isdigit() or uid == "0":
        problems.append((("USER",), "the image must run as a numeric non-root user, not %r" % user))
    entrypoint = json.loads(last("ENTRYPOINT") or "null")
    copied = [i["value"].split()[-1] for i in final if i["instruction"] == "COPY"]
    if not isinstance(entrypoint, list) or entrypoint[:1] != ["/usr/local/bin/host-test"]:
        problems.append((("ENTRYPOINT",), "must be host-test, in exec form: %r" % entrypoint))
    else:
        for needed in [entrypoint[0]] + entrypoint[entrypoint.index("--component") + 1:][:1]:
            if needed not in copied:
                problems.append((("ENTRYPOINT",), "%s is not copied into the image" % needed))
    env = {}
    for i in final:
        if i["instruction"] == "ENV":
            for pair in i["value"].split():
                key, _, value = pair.partition("=")
                env[key] = value
    made = " ".join(i["value"] for i in final if i["instruction"] == "RUN")
    for key in ("XDG_STATE_HOME", "WIF_PUSH_CACHE_DIR"):
        if key not in env:
            problems.append((("ENV",), "%s is not set" % key))
        elif env[key] not in made or "-o %s" % uid not in made:
            problems.append((("RUN",), "%s (%s) is not made for user %s" % (key, env[key], uid)))
    build = " ".join(i["value"] for i in parser.structure if i["instruction"] == "RUN")
    for step in ("rustup target add wasm32-wasip2", "cargo build --release --locked -p host-test"):
        if step not in build:
            problems.append((("RUN",), "the build stage does not run %r" % step))
    return [("Dockerfile", "image", problems)]


def runtime_config_problems(path):
    config = tomllib.loads(path.read_text())
    store = spin_variables()["variables"]["token_store"]["default"]
    problems = []
    entry = config.get("key_value_store", {}).get(store)
    if entry is None:
        problems.append((("key_value_store",), "no store %r (spin.toml's token_store)" % store))
    elif entry.get("type") != "redis" or not str(entry.get("url", "")).startswith(("redis://", "rediss://")):
        problems.append((("key_value_store", store), "must be type = \"redis\" with a redis:// url"))
    return [("RuntimeConfig", path.name, problems)]


def yaml_problems(path):
    results = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        kind = doc.get("kind", "?")
        name = (doc.get("metadata") or {}).get("name", "?")
        if doc.get("apiVersion", "").startswith("core.spinkube.dev/"):
            problems = schema_problems(crd_validator(SCHEMAS / "spinkube" / "core.spinkube.dev_spinapps.yaml"), doc)
            problems = problems or spinapp_problems(doc)
        elif doc.get("apiVersion", "").startswith("core.oam.dev/"):
            problems = schema_problems(wadm_validator(), doc) or wadm_problems(doc)
        else:
            problems = kubernetes(doc)
        results.append((kind, name, problems))
    return results


def check(paths):
    failed = False
    for path in map(pathlib.Path, paths):
        if path.name == "Dockerfile":
            results = dockerfile_problems(path)
        elif path.suffix == ".toml":
            results = runtime_config_problems(path)
        else:
            results = yaml_problems(path)
        for kind, name, problems in results:
            if not problems:
                print("ok %s %s/%s" % (path, kind, name))
            for field, problem in problems:
                failed = True
                print("%s: %s/%s: at %s: %s" % (path, kind, name, where(field), problem))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2:]))
    if len(sys.argv) == 3 and sys.argv[1] == "json":
        print(json.dumps([d for d in yaml.safe_load_all(pathlib.Path(sys.argv[2]).read_text()) if d]))
        sys.exit(0)
    sys.exit(__doc__)
