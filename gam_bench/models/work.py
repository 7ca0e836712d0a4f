"""Each family's minimal work per step: the bytes any implementation must move (the FLOPs are counted).

The fairness audit (tasks/throughput.py's `roofline_ms`, report/audit.py) compares a row's time
with what the architecture needs on this machine: max(FLOPs / peak FLOP/s, bytes / peak
bandwidth). The FLOPs are the row's counted ones (measure/flops.py: the same math gives the
same count, whatever the kernel). The bytes are declared here, per family, as a lower bound
on the memory traffic of one step:

    weights      P * 4 bytes, read once in forward; in backward read again and their
                 gradients written (3 P * 4); train_step adds AdamW (read param, grad, two
                 moments; write param and moments: 7 P * 4)
    inputs/out   the block's input and output (B, T, D): 2 B T D s in forward, 4 B T D s with
                 backward (their gradients too); an LM also writes its logits (B, T, V) and,
                 with backward, reads them and writes and reads their gradient (3 B T V s)
    activations  with backward, the tensors the backward needs, written once and read once:
                 2 * B * T * A * s per layer, A = `saved_per_token(config)`, the family's
                 declared floats per token per layer (below). Cheap elementwise results
                 (GELU, SiLU, sigmoid gates) count as recomputed; attention counts its
                 q, k, v, output and log-sum-exp (flash attention's, never the T x T scores)

s is 4 bytes for float32 and 2 for float16/bfloat16 autocast (weights stay float32).

A family declares A with `@saved_per_token("family")`. Every family must: `minimal_bytes`
raises a UserError naming the model, its family and this module when it has none, and a test
checks every registered family of gam_bench's own zoo.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gam_bench.errors import UserError
from gam_bench.models import registry

SAVED: dict[str, Callable[[Any], float]] = {}
# Families whose block-level unit is several layers (the hybrid's block is one period).
BLOCK_LAYERS: dict[str, Callable[[Any], int]] = {"hybrid": lambda c: max(c.attn_every, 1)}
MODES = ("forward", "forward_backward", "train_step")


def saved_per_token(family: str) -> Callable[[Callable[[Any], float]], Callable[[Any], float]]:
    """Decorator: declare `family`'s saved activations, floats per token per layer, of its config."""

    def register(fn: Callable[[Any], float]) -> Callable[[Any], float]:
        SAVED[family] = fn
        return fn

    return register


def declared(name: str) -> bool:
    """True when model `name`'s family declares its minimal work."""
    return registry.get_spec(name).family in SAVED


def check_declared(name: str) -> None:
    """A UserError unless model `name`'s family declares its minimal work."""
    family = registry.get_spec(name).family
    if family not in SAVED:
        raise UserError(
            f"model {name!r} (family {family!r}) declares no minimal work: add a "
            f"@saved_per_token({family!r}) formula (gam_bench/models/work.py) for the roofline audit"
        )


def minimal_bytes(
    name: str, config: Any, level: str, mode: str, batch: int, seq_len: int, dtype: str, params: int
) -> int:
    """Bytes one step of model `name` must move at least (see the module docstring)."""
    check_declared(name)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    s = 4 if dtype == "float32" else 2
    backward = mode != "forward"
    tokens = batch * seq_len
    weights = params * 4 * ((3 if backward else 1) + (7 if mode == "train_step" else 0))
    io = tokens * config.d_model * s * (4 if backward else 2)
    layers = config.n_layers if level == "lm" else BLOCK_LAYERS.get(registry.get_spec(name).family, lambda c: 1)(config)
    saved = 2 * tokens * SAVED[registry.get_spec(name).family](config) * s * layers if backward else 0
    logits = tokens * config.vocab_size * s * (3 if backward else 1) if level == "lm" else 0
    return int(weights + io + saved + logits)


# ---- the zoo's families: floats per token per layer that backward needs (D = d_model)


def _ffn(config: Any, mult: int = 4) -> float:
    """Pre-norm residual block around a mixer: the two LayerNorm inputs and the FFN's hidden
    pre-activation (the GELU is recomputed): 2 D + m D."""
    return 2 * config.d_model + mult * config.d_model


def _attention(d_q: float, d_v: float, heads: int) -> float:
    """Flash attention's saved tensors: q, k (d_q each), v and the output (d_v each), one
    log-sum-exp per head."""
    return 2 * d_q + 2 * d_v + heads


@saved_per_token("transformer")
def _transformer(c: Any) -> float:
    """FFN block + attention (q, k, v, output; log-sum-exp per head): 10 D + H. Naive and SDPA
    attention are the same math: the same minimal work."""
    return _ffn(c) + _attention(c.d_model, c.d_model, c.n_heads)


@saved_per_token("swa")
def _swa(c: Any) -> float:
    """As the Transformer: the window limits the FLOPs, not the saved tensors (10 D + H)."""
    return _ffn(c) + _attention(c.d_model, c.d_model, c.n_heads)


@saved_per_token("gam")
def _gam(c: Any) -> float:
    """FFN block + the local conv's output (D), the memory read's output and log-sum-exp
    (D + 1), the gate's logits (2 D), for the paths `fusion` keeps: 10 D + 1 when gated."""
    D = c.d_model
    local = D if c.fusion != "global" else 0
    memory = D + 1 if c.fusion != "local" else 0
    gate = 2 * D if c.fusion == "gated" else 0
    return _ffn(c) + local + memory + gate


@saved_per_token("mamba")
def _mamba(c: Any) -> float:
    """The mixer's input (D), x and z (2 E), the conv's pre-activation (E), dt, B, C (R + 2 N),
    delta before softplus (E) and the scan's output (E): D + 5 E + R + 2 N, E = expand D,
    R = ceil(D / 16). The (T, E, N) states are recomputed, as mamba_ssm's kernel does."""
    D = c.d_model
    E = c.expand * D
    return D + 5 * E + math.ceil(D / 16) + 2 * c.d_state


@saved_per_token("mamba2")
def _mamba2(c: Any) -> float:
    """The mixer's input (D), in_proj's output (z, x, B, C, dt: 2 E + 2 G N + H), the conv's
    output (E + 2 G N), the scan's output (E) and the gated norm's input (E): D + 5 E + 4 G N + H,
    E = expand D, H = E / headdim."""
    E = int(c.expand * c.d_model)
    heads = E // c.headdim
    gn = c.ngroups * c.d_state
    return c.d_model + 5 * E + 4 * gn + heads


@saved_per_token("gla")
def _gla(c: Any) -> float:
    """FFN block (mult m) + q, k (K each), v, the output gate, the output before and after its
    norm (V each), the low-rank forget gate (r + K): 3 K + 4 V + r, K = expand_k D, V = expand_v D."""
    K, V = c.expand_k * c.d_model, c.expand_v * c.d_model
    return _ffn(c, c.ffn_mult) + 3 * K + 4 * V + c.gate_low_rank_dim


@saved_per_token("retnet")
def _retnet(c: Any) -> float:
    """FFN block (mult m) + q, k (K each), v, the output gate, the output before and after its
    norm (V each): 2 K + 4 V, K = expand_k D, V = expand_v D."""
    K, V = c.expand_k * c.d_model, c.expand_v * c.d_model
    return _ffn(c, c.ffn_mult) + 2 * K + 4 * V


@saved_per_token("hyena")
def _hyena(c: Any) -> float:
    """FFN block (mult m) + in_proj's three streams (3 D), their short conv's outputs (3 D),
    the long convolution's output and out_proj's input (2 D), the implicit filter (D per
    position; shared by the batch, so exact at batch 1 and an overestimate above): 9 D."""
    return _ffn(c, c.ffn_mult) + 9 * c.d_model


def _gated_deltanet_mixer(c: Any) -> float:
    """q, k (K each) and v (V) before and after their short convs, the decay and beta (one
    each per head), the output gate and the output before and after its norm (V each):
    4 K + 5 V + 2 H, K = heads x head_dim, V = expand_v K."""
    K = c.num_heads * c.head_dim
    V = c.expand_v * K
    return 4 * K + 5 * V + 2 * c.num_heads


@saved_per_token("gated-deltanet")
def _gated_deltanet(c: Any) -> float:
    """FFN block (mult m) + the Gated DeltaNet mixer."""
    return _ffn(c, c.ffn_mult) + _gated_deltanet_mixer(c)


@saved_per_token("hybrid")
def _hybrid(c: Any) -> float:
    """Per layer, averaged over a period of attn_every layers: attn_every - 1 Gated DeltaNet
    layers and one attention layer (q, k, v, output, a log-sum-exp per head). A block is one
    period (BLOCK_LAYERS), an LM n_layers layers."""
    every = max(c.attn_every, 1)
    attention = _attention(c.d_model, c.d_model, c.attn_heads)
    return _ffn(c, c.ffn_mult) + ((every - 1) * _gated_deltanet_mixer(c) + attention) / every
