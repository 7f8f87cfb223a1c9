"""A plain-numpy interpreter of a functional Keras model's graph, for serving.

Reads the layer graph from ``model.get_config()`` and the weights once, then runs a
forward pass with numpy only: no TensorFlow call per request, which costs far more
than the arithmetic for one request's few rows (figures: ``docs/scaling.md#ranking``;
the query tower's in ``docs/performance-history.md``). Supported layers: Dense
(linear, relu, sigmoid, tanh), Embedding, Normalization, Concatenate, Multiply, Add,
Dropout (identity), and hybridrec's IdDropout (identity at inference),
MaskedMeanPooling and L2Normalize. Any other layer raises :class:`BundleError` at
construction, so callers can fall back to TensorFlow. Matches Keras to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from shared.contracts.errors import BundleError

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
}


def _history_names(arg: Any) -> list[str]:
    """Layer names feeding one call argument of the functional config."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [arg["config"]["keras_history"][0]]
    if isinstance(arg, list | tuple):
        return [n for a in arg for n in _history_names(a)]
    return []


class NumpyForward:
    """Plain-numpy forward pass of a functional Keras model (the ranker, the query tower).

    Args:
        model: A loaded functional ``keras.Model`` built from supported layers.

    Raises:
        BundleError: The model holds a layer this interpreter does not know.
    """

    def __init__(self, model: Any) -> None:
        cfg = model.get_config()
        self.input_names: list[str] = []
        self.steps: list[tuple[str, str, list[str], dict[str, Any]]] = []
        for layer_cfg in cfg["layers"]:
            name, kind = layer_cfg["name"], layer_cfg["class_name"]
            layer = model.get_layer(name)
            if kind == "InputLayer":
                self.input_names.append(name)
                continue
            nodes = layer_cfg.get("inbound_nodes", [])
            if len(nodes) != 1:
                raise BundleError(f"layer {name!r} is called {len(nodes)} times; the numpy "
                                  "forward supports layers called once")
            srcs = _history_names(nodes[0].get("args", []))
            self.steps.append((name, kind, srcs, self._params(layer, kind)))
        outs = cfg["output_layers"]
        self.output = outs[0][0] if isinstance(outs[0], list) else outs[0]

    @staticmethod
    def _params(layer: Any, kind: str) -> dict[str, Any]:
        if kind == "Dense":
            act = layer.get_config().get("activation", "linear")
            if act not in _ACTIVATIONS:
                raise BundleError(f"Dense activation {act!r} is not supported by the numpy forward")
            w = layer.get_weights()
            return {"kernel": np.ascontiguousarray(w[0], np.float32),
                    "bias": np.asarray(w[1], np.float32) if len(w) > 1 else None,
                    "act": _ACTIVATIONS[act]}
        if kind == "Embedding":
            return {"table": np.ascontiguousarray(layer.get_weights()[0], np.float32)}
        if kind == "Normalization":
            import keras

            mean = np.asarray(layer.mean, np.float32).reshape(1, -1)
            std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float32).reshape(1, -1)),
                             np.float32(keras.config.epsilon()))
            return {"mean": mean, "inv_std": (1.0 / std).astype(np.float32)}
        if kind in ("Concatenate", "Multiply", "Dropout", "Add", "IdDropout", "MaskedMeanPooling"):
            return {}
        if kind == "L2Normalize":
            cfg = layer.get_config()
            return {"axis": int(cfg.get("axis", -1)), "eps": np.float32(cfg.get("epsilon", 1e-12))}
        raise BundleError(f"layer type {kind!r} is not supported by the numpy forward; use "
                          "backend='tf_function'")

    #: Rows per block: small enough that OpenBLAS stays single-threaded, whose
    #: multi-threaded path is much slower on a busy box (figures:
    #: docs/scaling.md#measurements-behind-code-choices).
    block_rows = 256

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """[b, E] float32 outputs for a dict of input arrays."""
        n = len(inputs[self.input_names[0]]) if self.input_names else 0
        if n > self.block_rows:
            return np.concatenate([
                self._forward({k: v[lo:lo + self.block_rows] for k, v in inputs.items()})
                for lo in range(0, n, self.block_rows)])
        return self._forward(inputs)

    def _forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        vals: dict[str, np.ndarray] = {n: inputs[n] for n in self.input_names}
        for name, kind, srcs, p in self.steps:
            x = [vals[s] for s in srcs]
            if kind == "Dense":
                y = x[0] @ p["kernel"]
                if p["bias"] is not None:
                    y += p["bias"]
                vals[name] = p["act"](y)
            elif kind == "Embedding":
                vals[name] = p["table"][np.asarray(x[0], dtype=np.int64)]
            elif kind == "Normalization":
                vals[name] = (x[0] - p["mean"]) * p["inv_std"]
            elif kind == "Concatenate":
                vals[name] = np.concatenate(x, axis=-1)
            elif kind == "Multiply":
                y = x[0]
                for z in x[1:]:
                    y = y * z
                vals[name] = y
            elif kind == "Add":
                vals[name] = np.sum(x, axis=0)
            elif kind == "MaskedMeanPooling":  # (embeddings [B, L, d], ids [B, L])
                mask = (np.asarray(x[1]) != 0).astype(np.float32)
                total = np.einsum("bld,bl->bd", x[0], mask)
                vals[name] = total / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
            elif kind == "L2Normalize":
                sq = np.sum(x[0] * x[0], axis=p["axis"], keepdims=True)
                vals[name] = x[0] / np.sqrt(np.maximum(sq, p["eps"]))
            else:  # Dropout, IdDropout: identity at inference
                vals[name] = x[0]
        return np.asarray(vals[self.output], dtype=np.float32)
