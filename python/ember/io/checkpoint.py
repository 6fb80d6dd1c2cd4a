"""Checkpoints: one safetensors file holding the model's state, the optimizer's (moments, step),
any other object's state_dict (a DataLoader's position, an lr scheduler), plain values (epoch) and
the RNG state, written atomically. Resuming from it continues bitwise as if never interrupted.

Layout: every tensor of the nested states is a file entry with a dotted key ("model.fc.weight",
"optimizer.state.0.exp_avg"); everything else is one JSON document in the metadata under
"ember.checkpoint", with tensors replaced by references to their keys and the types JSON lacks
(tuples, dicts with int keys) tagged, so the structure comes back exactly as it was saved."""
from __future__ import annotations

import json
import os

import numpy as np

from ..random import default_generator
from ..tensor import Tensor
from .atomic import write_atomic
from .safetensors_io import decode, encode

SCHEMA = 1
_META_KEY = "ember.checkpoint"


def _flatten(value, key, tensors):
    """The JSON skeleton of value; tensors and arrays move into `tensors` under their dotted key."""
    if isinstance(value, (Tensor, np.ndarray)):
        tensors[key] = value
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[k, _flatten(v, f"{key}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"[save_checkpoint] {key}: cannot store a {type(value).__name__} "
                    f"(tensors, arrays, numbers, strings, lists, tuples and dicts can be stored)")


def _unflatten(node, tensors):
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__tuple__" in node:
            return tuple(_unflatten(v, tensors) for v in node["__tuple__"])
        return {k: _unflatten(v, tensors) for k, v in node["__dict__"]}
    if isinstance(node, list):
        return [_unflatten(v, tensors) for v in node]
    return node


def save_checkpoint(path, model=None, optimizer=None, **extra) -> str:
    """Writes model.state_dict(), optimizer.state_dict(), each extra object's state_dict() (or the
    extra value itself) and ember's RNG state to `path`, atomically: an existing file at path is
    replaced only by a complete new one."""
    objects = {"model": model, "optimizer": optimizer, **extra}
    tensors, doc = {}, {"schema": SCHEMA, "rng": [str(v) for v in default_generator.get_state()],
                        "objects": {}, "values": {}}
    for name, obj in objects.items():
        if obj is None:
            continue
        if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
            doc["objects"][name] = _flatten(obj.state_dict(), name, tensors)
        else:
            doc["values"][name] = _flatten(obj, name, tensors)
    data = encode(tensors, {_META_KEY: json.dumps(doc)})
    return write_atomic(path, data)


def load_checkpoint(path, model=None, optimizer=None, device="cpu", **objects) -> dict:
    """Restores every object passed (load_state_dict) and the RNG state from a checkpoint; returns
    the plain values saved with it (e.g. {"epoch": 3})."""
    with open(os.fspath(path), "rb") as f:
        tensors, metadata = decode(f.read(), path, device)
    if _META_KEY not in metadata:
        raise ValueError(f"[load_checkpoint] {os.fspath(path)} is a safetensors file but not an ember checkpoint "
                         f"(no {_META_KEY!r} metadata); use em.load for plain weights")
    doc = json.loads(metadata[_META_KEY])
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"[load_checkpoint] {os.fspath(path)}: checkpoint schema {doc.get('schema')}, "
                         f"this ember reads {SCHEMA}")
    wanted = {"model": model, "optimizer": optimizer, **objects}
    for name, obj in wanted.items():
        if obj is None:
            continue
        if name not in doc["objects"]:
            raise KeyError(f"[load_checkpoint] {os.fspath(path)} has no state for {name!r}; "
                           f"it holds {sorted(doc['objects'])}")
        obj.load_state_dict(_unflatten(doc["objects"][name], tensors))
    default_generator.set_state(tuple(int(v) for v in doc["rng"]))
    return {k: _unflatten(v, tensors) for k, v in doc["values"].items()}
