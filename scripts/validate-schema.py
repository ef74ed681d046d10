"""Validates every reference kernel.toml against manifests/kernel.schema.json,
and checks that the schema rejects known-bad manifests (so this test can fail).

Editors (Taplo / Even Better TOML) use the same schema while authors type.
"""
import copy
import json
import pathlib
import sys
import tomllib

import jsonschema

root = pathlib.Path(__file__).resolve().parent.parent
schema = json.loads((root / "manifests" / "kernel.schema.json").read_text())
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)

manifests = sorted(root.glob("kernels/*/kernel.toml"))
if not manifests:
    sys.exit("no kernels/*/kernel.toml found")
failed = False
for path in manifests:
    errors = list(validator.iter_errors(tomllib.loads(path.read_text())))
    for error in errors:
        print(f"{path.relative_to(root)}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
    failed |= bool(errors)
    print(f"{path.relative_to(root)}: {'INVALID' if errors else 'valid'}")

good = tomllib.loads(manifests[0].read_text())
breakages = {
    "unknown top-level field": lambda m: m.update(colour="red"),
    "missing license": lambda m: m["kernel"].pop("license"),
    "bad sha256": lambda m: m["artifacts"][0].update(sha256="ABC"),
    "absolute path": lambda m: m["artifacts"][0].update(path="/etc/passwd"),
    "dotdot path": lambda m: m["artifacts"][0].update(path="a/../b"),
    "bad target": lambda m: m["artifacts"][0].update(targets=["sm8"]),
    "scalar with shape": lambda m: next(iter(m["ops"].values()))["params"].append({"name": "k", "scalar": "u32", "shape": [1]}),
    "four grid dims": lambda m: m["artifacts"][0]["entries"][0].update(grid=[1, 1, 1, 1]),
}
for name, breaks in breakages.items():
    bad = copy.deepcopy(good)
    breaks(bad)
    if validator.is_valid(bad):
        print(f"schema accepts a manifest with {name}")
        failed = True
sys.exit(1 if failed else 0)
