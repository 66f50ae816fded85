#!/usr/bin/env python3
"""Parse exported workflows with hera's Argo models (pydantic classes generated from Argo's
OpenAPI spec): the document must be a valid `hera.workflows.models.WorkflowTemplate`,
with no field hera does not know (a misspelt key is an error, not silently dropped).

Usage: validate_hera.py FILE...   (YAML or JSON). Exit 0 when every file parses, else 1
naming each file and what is wrong.
"""
import sys

import yaml
from hera.workflows.models import WorkflowTemplate


def unknown_keys(model, data, at):
    """Keys of `data` that `model` (a pydantic model instance parsed from it) dropped."""
    out = []
    if not isinstance(data, dict) or not hasattr(type(model), "model_fields"):
        return out
    known = {}
    for name, f in type(model).model_fields.items():
        known[f.alias or name] = name
    for k, v in data.items():
        if k not in known:
            out.append(f"{at}.{k}")
            continue
        sub = getattr(model, known[k])
        if isinstance(v, list) and isinstance(sub, list):
            for i, (m, d) in enumerate(zip(sub, v)):
                out += unknown_keys(m, d, f"{at}.{k}[{i}]")
        elif isinstance(v, dict):
            out += unknown_keys(sub, v, f"{at}.{k}")
    return out


bad = 0
for path in sys.argv[1:]:
    with open(path) as f:
        doc = yaml.safe_load(f)
    try:
        wt = WorkflowTemplate.model_validate(doc)
    except Exception as e:  # pydantic's ValidationError names every wrong field
        print(f"{path}: not a valid Argo WorkflowTemplate (hera models): {e}")
        bad += 1
        continue
    extra = unknown_keys(wt, doc, "$")
    if extra:
        print(f"{path}: fields Argo's models do not have: {', '.join(extra)}")
        bad += 1
    else:
        print(f"{path}: valid WorkflowTemplate (hera models), {len(wt.spec.templates)} templates")
sys.exit(1 if bad else 0)
