"""Hyperparameter search over compile/fit: every trial builds a fresh model with build_fn(**params),
trains it and scores it on a validation split (or k folds), and the search returns the best
parameters, the best model and a table of every trial.

Parameters are routed by name: those in build_fn's signature go to build_fn (layer sizes, dropout,
learning rate, L2, ... the function builds and compiles the model, as with Keras's scikit-learn
wrapper); `epochs` and `batch_size` go to fit. Anything else is an error, so a typo cannot be
silently ignored. Each trial seeds ember with seed + trial number: a search is reproducible."""
from __future__ import annotations

import inspect
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..random import manual_seed

FIT_PARAMS = ("epochs", "batch_size")


# ---- random-search distributions --------------------------------------------------------------

@dataclass(frozen=True)
class Distribution:
    kind: str
    low: float = 0.0
    high: float = 1.0
    options: tuple = ()

    def sample(self, rng: np.random.Generator):
        if self.kind == "choice":
            return self.options[int(rng.integers(len(self.options)))]
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return int(rng.integers(int(self.low), int(self.high) + 1))  # randint, both ends included


def choice(*options):
    return Distribution("choice", options=tuple(options[0]) if len(options) == 1 and isinstance(options[0], (list, tuple)) else options)


def uniform(low, high):
    return Distribution("uniform", low, high)


def loguniform(low, high):
    if low <= 0 or high <= low:
        raise ValueError(f"[loguniform] needs 0 < low < high, got {low}, {high}")
    return Distribution("loguniform", low, high)


def randint(low, high):
    return Distribution("randint", low, high)


def _as_distribution(name, spec):
    if isinstance(spec, Distribution):
        return spec
    if isinstance(spec, list):
        return choice(spec)
    if isinstance(spec, tuple) and len(spec) == 2:
        lo, hi = spec
        return randint(lo, hi) if isinstance(lo, int) and isinstance(hi, int) else uniform(lo, hi)
    raise TypeError(f"[random_search] {name!r}: give a list (choice), a (low, high) tuple or a tune distribution, "
                    f"got {spec!r}")


# ---- results ----------------------------------------------------------------------------------

@dataclass
class SearchResult:
    best_params: dict
    best_score: float
    best_model: object
    monitor: str
    trials: list = field(default_factory=list)   # one dict per trial: params, score, epochs, seconds

    def table(self) -> str:
        """The trials as an aligned text table, best first."""
        keys = list(self.trials[0]["params"]) if self.trials else []
        rows = sorted(self.trials, key=lambda t: t["rank"])
        head = ["rank", *keys, self.monitor, "epochs", "seconds"]
        body = [[str(t["rank"]), *(_fmt(t["params"][k]) for k in keys), _fmt(t["score"]), str(t["epochs"]),
                 f"{t['seconds']:.1f}"] for t in rows]
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head] + body]
        return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:])

    def __str__(self):
        return f"best {self.monitor} {_fmt(self.best_score)} with {self.best_params}\n{self.table()}"


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ---- one trial --------------------------------------------------------------------------------

def _split_params(build_fn, params):
    accepted = inspect.signature(build_fn).parameters
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    build, fit = {}, {}
    for k, v in params.items():
        if k in FIT_PARAMS:
            fit[k] = v
        elif k in accepted or takes_kwargs:
            build[k] = v
        else:
            raise ValueError(f"[tune] parameter {k!r} is neither an argument of {build_fn.__name__}() nor one of "
                             f"{FIT_PARAMS}")
    return build, fit


def _score_of(history, monitor, mode):
    values = history.history.get(monitor)
    if not values:
        raise KeyError(f"[tune] {monitor!r} was not logged; available: {sorted(history.history)}")
    return min(values) if mode == "min" else max(values)


def _folds(n, k, rng):
    order = rng.permutation(n)
    return [order[i::k] for i in range(k)]


def _take(a, idx):
    if isinstance(a, dict):
        return {h: np.asarray(v)[idx] for h, v in a.items()}
    return np.asarray(a)[idx]


def _run_trial(build_fn, params, x, y, cfg, seed):
    """(score, model, epochs) of one parameter set: one fit scored on the validation data, or the
    mean over k folds (then the returned model is refitted on all the data)."""
    build, fit = _split_params(build_fn, params)
    fit_kw = {"epochs": cfg["epochs"], "batch_size": cfg["batch_size"], "verbose": 0, **fit}
    if cfg["cv"]:
        scores, epochs = [], 0
        for i, held in enumerate(_folds(len(x), cfg["cv"], np.random.default_rng(seed))):
            train = np.setdiff1d(np.arange(len(x)), held)
            manual_seed(seed)
            model = build_fn(**build)
            h = model.fit(_take(x, train), _take(y, train), validation_data=(_take(x, held), _take(y, held)),
                          callbacks=cfg["callbacks"](), **fit_kw)
            scores.append(_score_of(h, cfg["monitor"], cfg["mode"]))
            epochs += len(h.epoch)
        manual_seed(seed)
        model = build_fn(**build)
        model.fit(x, y, **fit_kw)
        return float(np.mean(scores)), model, epochs // cfg["cv"]
    manual_seed(seed)
    model = build_fn(**build)
    h = model.fit(x, y, validation_split=cfg["validation_split"], validation_data=cfg["validation_data"],
                  callbacks=cfg["callbacks"](), **fit_kw)
    return _score_of(h, cfg["monitor"], cfg["mode"]), model, len(h.epoch)


def _search(build_fn, candidates, x, y, *, epochs, batch_size, validation_split, validation_data, cv, monitor, mode,
            callbacks, seed, verbose):
    if validation_data is None and not validation_split and not cv:
        raise ValueError("[tune] trials need held-out data: validation_split, validation_data or cv (k folds)")
    if cv and (int(cv) < 2 or int(cv) > len(x)):
        raise ValueError(f"[tune] cv must be between 2 and the number of samples ({len(x)}), got {cv}")
    mode = mode if mode != "auto" else ("max" if "acc" in monitor else "min")
    cfg = dict(epochs=epochs, batch_size=batch_size, validation_split=validation_split,
               validation_data=validation_data, cv=int(cv or 0), monitor=monitor, mode=mode,
               callbacks=callbacks or (lambda: []))
    trials, best = [], None
    for i, params in enumerate(candidates):
        t0 = time.perf_counter()
        score, model, ran = _run_trial(build_fn, params, x, y, cfg, seed + i)
        trials.append({"trial": i, "params": dict(params), "score": score, "epochs": ran,
                       "seconds": time.perf_counter() - t0})
        better = best is None or (score < best[0] if mode == "min" else score > best[0])
        if better and math.isfinite(score):
            best = (score, params, model)
        if verbose:
            print(f"[tune] trial {i + 1}: {params} -> {monitor} {_fmt(score)}")
    if best is None:
        raise RuntimeError(f"[tune] no trial produced a finite {monitor}")
    order = sorted(range(len(trials)), key=lambda j: trials[j]["score"] * (1 if mode == "min" else -1)
                   if math.isfinite(trials[j]["score"]) else math.inf)
    for rank, j in enumerate(order, 1):
        trials[j]["rank"] = rank
    return SearchResult(dict(best[1]), best[0], best[2], monitor, trials)


def grid_search(build_fn, param_grid: dict, x, y, *, epochs=10, batch_size=32, validation_split=0.2,
                validation_data=None, cv=None, monitor="val_loss", mode="auto", callbacks=None, seed=0, verbose=0):
    """Tries every combination of param_grid ({name: [values]}). callbacks: a function returning
    fresh callbacks per trial (e.g. lambda: [em.callbacks.EarlyStopping(patience=3)])."""
    if not param_grid:
        raise ValueError("[grid_search] param_grid is empty")
    for k, v in param_grid.items():
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError(f"[grid_search] {k!r} needs a non-empty list of values, got {v!r}")
    names = list(param_grid)
    candidates = [dict(zip(names, combo)) for combo in itertools.product(*(param_grid[k] for k in names))]
    return _search(build_fn, candidates, x, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                   validation_data=validation_data, cv=cv, monitor=monitor, mode=mode, callbacks=callbacks, seed=seed,
                   verbose=verbose)


def random_search(build_fn, param_space: dict, n_trials: int, x, y, *, epochs=10, batch_size=32,
                  validation_split=0.2, validation_data=None, cv=None, monitor="val_loss", mode="auto",
                  callbacks=None, seed=0, verbose=0):
    """n_trials parameter sets drawn from param_space ({name: list | (low, high) | distribution})
    by a NumPy generator seeded with `seed`."""
    if n_trials < 1:
        raise ValueError(f"[random_search] n_trials must be >= 1, got {n_trials}")
    space = {k: _as_distribution(k, v) for k, v in param_space.items()}
    rng = np.random.default_rng(seed)
    candidates = [{k: d.sample(rng) for k, d in space.items()} for _ in range(n_trials)]
    return _search(build_fn, candidates, x, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                   validation_data=validation_data, cv=cv, monitor=monitor, mode=mode, callbacks=callbacks, seed=seed,
                   verbose=verbose)
