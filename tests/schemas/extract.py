#!/usr/bin/env python3
"""Extract the OpenAI response schemas the gateway must honour into plain JSON Schema 2020-12.

Usage: python3 tests/schemas/extract.py [path/to/openapi.yaml]
(default: ../shared/openai-openapi/openapi.yaml relative to the repo root; needs PyYAML).

Takes ROOTS and every schema they reference transitively from `components.schemas`, converts
OpenAPI-isms (`nullable: true` -> `anyOf: [orig, {type: null}]`; drops `x-*`, `discriminator`,
`example(s)`, `deprecated`, `description`), rewrites `#/components/schemas/X` to `#/$defs/X` and
writes tests/schemas/openai.json (sorted keys, indent 1) for tests/common/openai_schema.rs.
"""

import json
import os
import sys

import yaml

ROOTS = [
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ErrorResponse",
    "ListModelsResponse",
    "Model",
    # The Responses API: the response object and every stream event (each event type is
    # also a root of its own, so a test can name the one it expects).
    "Response",
    "ResponseStreamEvent",
    # Stored responses: `GET /v1/responses/{id}/input_items`.
    "ResponseItemList",
]
REF_PREFIX = "#/components/schemas/"
# Keywords dropped from every schema object: annotations, OpenAPI-only keywords, vendor extensions.
DROP = {"description", "discriminator", "example", "examples", "deprecated", "nullable"}
# Keywords whose value is a schema / a list of schemas / a map of name -> schema.
ONE = {"additionalProperties", "items", "not", "if", "then", "else", "contains",
       "propertyNames", "unevaluatedItems", "unevaluatedProperties", "additionalItems"}
LIST = {"allOf", "anyOf", "oneOf", "prefixItems"}
MAP = {"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"}

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def convert(schema, refs, name):
    """Returns a converted copy of `schema` (the schema called `name` or a part of it), adding
    every referenced name to `refs`. `$recursiveRef: "#"` (filters that nest themselves) becomes
    a `$ref` to `name`, and its `$recursiveAnchor` is dropped."""
    if not isinstance(schema, dict):
        return schema  # boolean schema
    out = {}
    for key, value in schema.items():
        if key in DROP or key.startswith("x-"):
            continue
        if key == "$ref":
            if not value.startswith(REF_PREFIX):
                sys.exit(f"unsupported $ref {value!r}")
            name = value[len(REF_PREFIX):]
            refs.add(name)
            out[key] = "#/$defs/" + name
        elif key == "$recursiveAnchor":
            continue
        elif key == "$recursiveRef" and value == "#":
            out["$ref"] = "#/$defs/" + name
        elif key in ("$recursiveRef", "$dynamicRef"):
            sys.exit(f"unsupported keyword {key} in an extracted schema")
        elif key in LIST or (key == "items" and isinstance(value, list)):
            out[key] = [convert(v, refs, name) for v in value]
        elif key in ONE:
            out[key] = convert(value, refs, name)
        elif key in MAP:
            out[key] = {k: convert(v, refs, name) for k, v in value.items()}
        else:
            out[key] = value  # data: type, enum, const, default, required, format, ...
    if schema.get("nullable") is True:
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        REPO, "..", "shared", "openai-openapi", "openapi.yaml")
    with open(src, encoding="utf-8") as f:
        doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schemas = doc["components"]["schemas"]
    defs, todo = {}, list(ROOTS)
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        if name not in schemas:
            sys.exit(f"schema {name!r} not found in {src}")
        refs = set()
        defs[name] = convert(schemas[name], refs, name)
        todo.extend(sorted(refs - defs.keys()))
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs}
    dst = os.path.join(HERE, "openai.json")
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {dst}: {len(defs)} schemas, {os.path.getsize(dst)} bytes")


if __name__ == "__main__":
    main()
