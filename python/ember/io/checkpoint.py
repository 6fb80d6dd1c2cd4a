"""Checkpoints: one safetensors file holding the model's state, the optimizer's (moments, step),
any other object's state_dict (a DataLoader's position, an lr scheduler), plain values (epoch) and
the RNG state, written atomically. Resuming from it continues bitwise as if never interrupted.

Layout: every tensor of the nested states is a file entry with a dotted key ("model.fc.weight",
"optimizer.state.0.exp_avg"), so any safetensors tool can inspect the file; everything else is one
JSON document in the metadata under "ember.checkpoint", with tensors replaced by references to their
keys and what JSON cannot say tagged (tuples; dicts as [key, value] pairs, so int keys stay ints),
so the structure comes back exactly as it was saved."""
from __future__ import annotations

import json
import os

import numpy as np

from ..random import default_generator
from ..tensor import Tensor
from .safetensors_io import read, write

SCHEMA = 1
_META_KEY = "ember.checkpoint"
_SCALARS = (bool, int, float, str, type(None))


def _flatten(value, key, tensors):
    """The JSON skeleton of value; its tensors and arrays move into `tensors` under dotted keys."""
    if isinstance(value, (Tensor, np.ndarray)):
        if key in tensors:
            raise ValueError(f"[save_checkpoint] two entries share the key {key!r} (e.g. dict keys 1 and '1')")
        tensors[key] = value
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[_dict_key(k, key), _flatten(v, f"{key}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"[save_checkpoint] {key}: cannot store a {type(value).__name__} (tensors, arrays, numbers, "
                    "strings, None, lists, tuples and dicts can be stored)")


def _dict_key(k, key):
    if not isinstance(k, _SCALARS):
        raise TypeError(f"[save_checkpoint] {key}: dict key {k!r} is a {type(k).__name__}; keys must be "
                        "str, int, float, bool or None")
    return k


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


def _has_state(obj) -> bool:
    return hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")


def save_checkpoint(path, model=None, optimizer=None, **extra) -> str:
    """Writes model.state_dict(), optimizer.state_dict(), each extra object's state_dict() (or the
    extra value itself: a number, string, tensor, array, or lists/dicts of them) and ember's RNG
    state to `path`, atomically: an existing file at path is replaced only by a complete new one."""
    tensors = {}
    doc = {"schema": SCHEMA, "rng": [str(v) for v in default_generator.get_state()], "objects": {}, "values": {}}
    named = {k: v for k, v in (("model", model), ("optimizer", optimizer)) if v is not None}
    for name, obj in {**named, **extra}.items():
        if _has_state(obj):
            doc["objects"][name] = _flatten(obj.state_dict(), name, tensors)
        else:
            doc["values"][name] = _flatten(obj, name, tensors)
    return write(path, tensors, {_META_KEY: json.dumps(doc)})


def _document(path, metadata) -> dict:
    """The checkpoint's JSON document, checked to be one this version reads."""
    if _META_KEY not in metadata:
        raise ValueError(f"[load_checkpoint] {path} is a safetensors file but not an ember checkpoint "
                         f"(no {_META_KEY!r} metadata); use em.load for plain weights")
    try:
        doc = json.loads(metadata[_META_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"[load] {path}: corrupt or truncated safetensors file (checkpoint metadata: {e})") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema != SCHEMA:
        raise ValueError(f"[load_checkpoint] {path}: checkpoint schema {schema}, this ember reads {SCHEMA}")
    try:
        doc["rng"] = tuple(int(v) for v in doc["rng"])
        doc["objects"], doc["values"] = dict(doc["objects"]), dict(doc["values"])
    except (KeyError, TypeError, ValueError) as e:
        raise _malformed(path, e) from None
    return doc


def _malformed(path, error) -> ValueError:
    return ValueError(f"[load_checkpoint] {path}: malformed checkpoint document ({type(error).__name__}: {error})")


def _restore(path, node, tensors):
    """_unflatten of a document read from a file, whose references may point at nothing."""
    try:
        return _unflatten(node, tensors)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _malformed(path, e) from None


def load_checkpoint(path, model=None, optimizer=None, device="cpu", **objects) -> dict:
    """Restores every object passed (load_state_dict, with the state saved under the same name) and
    the RNG state; returns the plain values saved with the checkpoint (e.g. {"epoch": 3}). Tensors
    come back on `device`."""
    path = os.fspath(path)
    tensors, metadata = read(path, device)
    doc = _document(path, metadata)
    wanted = {name: obj for name, obj in {"model": model, "optimizer": optimizer, **objects}.items() if obj is not None}
    missing = [name for name in wanted if name not in doc["objects"]]
    if missing:
        raise KeyError(f"[load_checkpoint] {path} has no state for {', '.join(map(repr, missing))}; "
                       f"it holds state for {sorted(doc['objects'])} and values {sorted(doc['values'])}")
    values = {name: _restore(path, v, tensors) for name, v in doc["values"].items()}
    states = {name: _restore(path, doc["objects"][name], tensors) for name in wanted}
    for name, obj in wanted.items():
        obj.load_state_dict(states[name])
    default_generator.set_state(doc["rng"])
    return values
