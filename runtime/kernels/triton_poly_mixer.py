"""PolyMixer in Triton: the same op as ``torch.ops.pomexport.poly_mixer`` (docs/design.md §2).

    h (B, N, C), g (B, N, C | sel_heads), state (B, C) fp32, count (B,) fp32, coeff (C, k) fp32
    -> y (B, N, C) in h's dtype = gate(g) * (state + sum_n P(h_n)) / (count + N)
    -> state_out (B, C) fp32      = state + sum_n P(h_n)

Same plan as the CUDA kernels (runtime/plugin/polyMixerKernel.cu), ``P`` is never materialised:

1. ``_partial_sums``: grid (column tiles, token chunks, B); fp32 sums of ``P`` per chunk into a
   workspace [B, chunks, C];
2. ``_finalize_state``: ``state_out = state + sum of the chunks`` in chunk order (deterministic);
3. ``_gate_select``: ``y = gate(g) * state_out / (count + N)``.

fp32 or fp16 inputs, fp32 arithmetic; the order is a ``tl.constexpr`` unrolled with
``tl.static_range``. Runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1`` (the
interpreter decides when this module is imported, so set the variable before importing it).
Importing this module needs ``triton``; ``pomexport.runtime.kernels.dispatch`` imports it lazily.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from pomexport.export.artifact.contract import MixerAttrs
from pomexport.models.polynomial import POWERS_CLAMP, POWERS_SLOPE

# Same reduction shape as the CUDA kernels: clamp(N // 16, 1, 128) chunks.
MIN_TOKENS_PER_CHUNK = 16
MAX_TOKEN_CHUNKS = 128
MAX_ORDER = 4
DTYPES = (torch.float32, torch.float16)

# jit functions may only read module globals that are constexpr.
_SQRT1_2 = tl.constexpr(0.7071067811865476)
_POWERS_SLOPE = tl.constexpr(POWERS_SLOPE)
_POWERS_LOW = tl.constexpr(POWERS_CLAMP[0])
_POWERS_HIGH = tl.constexpr(POWERS_CLAMP[1])


@triton.jit
def _gelu(x):
    """Exact (erf) GELU, torch's default."""
    return 0.5 * x * (1.0 + tl.math.erf(x * _SQRT1_2))


@triton.jit
def _powers_activation(x):
    """The official pom package's activation: clamp(leaky_relu(x, 0.01), -0.1, 6)."""
    leaky = tl.where(x > 0.0, x, x * _POWERS_SLOPE)
    return tl.minimum(tl.maximum(leaky, _POWERS_LOW), _POWERS_HIGH)


@triton.jit
def _partial_sums(
    h_ptr,
    coeff_ptr,
    partial_ptr,
    tokens,
    channels,
    columns,
    tokens_per_chunk,
    MOMENTS: tl.constexpr,
    ORDER: tl.constexpr,
    ORDER_PAD: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Sums of P over one token chunk, for BLOCK_C columns.

    moments: column ``col`` of each of the ORDER chunks of h; row j of ``acc`` sums p_{j+1}.
    powers: channel ``col``; row 0 of ``acc`` sums the polynomial.
    """
    pid_c, chunk, batch = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < columns
    rows = tl.arange(0, ORDER_PAD)
    acc = tl.zeros((ORDER_PAD, BLOCK_C), dtype=tl.float32)
    begin = chunk * tokens_per_chunk
    end = tl.minimum(tokens, begin + tokens_per_chunk)
    for n0 in range(begin, end, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        mask = (n[:, None] < end) & col_ok[None, :]
        base = h_ptr + (batch * tokens + n[:, None]).to(tl.int64) * channels + cols[None, :]
        if MOMENTS:
            p = tl.full((BLOCK_N, BLOCK_C), 1.0, dtype=tl.float32)
            for j in tl.static_range(ORDER):
                a = _gelu(tl.load(base + j * columns, mask=mask, other=0.0).to(tl.float32))
                p = p * a
                acc += tl.where(rows[:, None] == j, tl.sum(p, axis=0)[None, :], 0.0)
        else:
            # masked lanes load 0 and activate to 0, so they add nothing to the sums
            a = _powers_activation(tl.load(base, mask=mask, other=0.0).to(tl.float32))
            power = a
            p = tl.load(coeff_ptr + cols * ORDER, mask=col_ok, other=0.0)[None, :] * power
            for j in tl.static_range(1, ORDER):
                power = power * a
                c_j = tl.load(coeff_ptr + cols * ORDER + j, mask=col_ok, other=0.0)
                p += c_j[None, :] * power
            acc += tl.where(rows[:, None] == 0, tl.sum(p, axis=0)[None, :], 0.0)
    out = partial_ptr + (batch * tl.num_programs(1) + chunk).to(tl.int64) * channels
    store_rows = ORDER if MOMENTS else 1
    out_mask = (rows[:, None] < store_rows) & col_ok[None, :]
    tl.store(out + rows[:, None] * columns + cols[None, :], acc, mask=out_mask)


@triton.jit
def _finalize_state(state_ptr, partial_ptr, out_ptr, channels, chunks, BLOCK_C: tl.constexpr):
    """state_out[b, c] = state[b, c] + sum over chunks, in chunk order."""
    pid_c, batch = tl.program_id(0), tl.program_id(1)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    ok = cols < channels
    total = tl.zeros((BLOCK_C,), dtype=tl.float32)
    for k in range(0, chunks):
        row = (batch * chunks + k).to(tl.int64) * channels
        total += tl.load(partial_ptr + row + cols, mask=ok, other=0.0)
    offs = batch.to(tl.int64) * channels + cols
    tl.store(out_ptr + offs, tl.load(state_ptr + offs, mask=ok, other=0.0) + total, mask=ok)


@triton.jit
def _gate_select(
    g_ptr,
    state_out_ptr,
    count_ptr,
    y_ptr,
    rows_total,
    tokens,
    channels,
    SEL_HEADS: tl.constexpr,
    HARDSIGMOID: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """y = gate(g) * (state_out / (count + N)); one gate per head when SEL_HEADS > 1."""
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (r[:, None] < rows_total) & (c[None, :] < channels)
    batch = r // tokens
    den = tl.load(count_ptr + batch, mask=r < rows_total, other=1.0) + tokens
    s = tl.load(
        state_out_ptr + batch[:, None].to(tl.int64) * channels + c[None, :], mask=mask, other=0.0
    )
    mean = s / den[:, None]  # same order as the reference: the mean first, then the gate
    if SEL_HEADS > 1:
        g_offs = r[:, None].to(tl.int64) * SEL_HEADS + c[None, :] // (channels // SEL_HEADS)
    else:
        g_offs = r[:, None].to(tl.int64) * channels + c[None, :]
    x = tl.load(g_ptr + g_offs, mask=mask, other=0.0).to(tl.float32)
    if HARDSIGMOID:
        gate = tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0
    else:
        gate = 1.0 / (1.0 + tl.exp(-x))
    y = gate * mean
    tl.store(
        y_ptr + r[:, None].to(tl.int64) * channels + c[None, :],
        y.to(y_ptr.dtype.element_ty),
        mask=mask,
    )


def token_chunks(tokens: int) -> int:
    """Chunks the token reduction uses: a function of N only (results independent of B)."""
    return 0 if tokens <= 0 else max(1, min(MAX_TOKEN_CHUNKS, tokens // MIN_TOKENS_PER_CHUNK))


def uncovered_reason(h: Tensor, g: Tensor, coeff: Tensor | None, attrs: MixerAttrs) -> str | None:
    """Why this kernel does not handle a call (the dispatcher then falls back), or None."""
    if h.dtype not in DTYPES or g.dtype != h.dtype:
        return f"dtype {h.dtype}/{g.dtype} (needs fp32 or fp16, same for h and g)"
    if not 1 <= attrs.order <= MAX_ORDER:
        return f"order {attrs.order} (kernels cover 1..{MAX_ORDER})"
    if h.dim() != 3 or g.dim() != 3 or h.shape[:2] != g.shape[:2]:
        return f"shapes h {tuple(h.shape)} / g {tuple(g.shape)}"
    channels = h.shape[2]
    if attrs.variant == "moments" and channels % attrs.order:
        return f"moments with C={channels} not divisible by order {attrs.order}"
    if attrs.variant == "powers" and (
        coeff is None or tuple(coeff.shape) != (channels, attrs.order)
    ):
        return "powers needs coeff [C, order]"
    if g.shape[2] != attrs.gate_width(channels) or channels % attrs.heads:
        return f"g width {g.shape[2]} for sel_heads={attrs.sel_heads}, C={channels}"
    if h.shape[0] > 65535:
        return "batch > 65535"
    return None


def _block(n: int, cap: int) -> int:
    return max(16, min(cap, triton.next_power_of_2(max(n, 1))))


def _sum_chunks(h: Tensor, coeff: Tensor | None, attrs: MixerAttrs, chunks: int) -> Tensor:
    """fp32 partial sums of P per token chunk: (B, chunks, C)."""
    batch, tokens, channels = h.shape
    partials = torch.empty((batch, chunks, channels), device=h.device, dtype=torch.float32)
    if chunks and batch:
        moments = attrs.variant == "moments"
        columns = channels // attrs.order if moments else channels
        coeff_arg = coeff.to(torch.float32).contiguous() if coeff is not None else partials
        block_c = _block(columns, 128)
        grid = (triton.cdiv(columns, block_c), chunks, batch)
        _partial_sums[grid](
            h, coeff_arg, partials, tokens, channels, columns, triton.cdiv(tokens, chunks),
            MOMENTS=moments, ORDER=attrs.order, ORDER_PAD=triton.next_power_of_2(attrs.order),
            BLOCK_N=16, BLOCK_C=block_c,
        )  # fmt: skip
    return partials


def _select(g: Tensor, state_out: Tensor, count: Tensor, y: Tensor, attrs: MixerAttrs) -> None:
    """y = gate(g) * state_out / (count + N), written into ``y`` (B, N, C)."""
    batch, tokens, channels = y.shape
    rows = batch * tokens
    if rows:
        block_c = _block(channels, 128)
        grid = (triton.cdiv(rows, 16), triton.cdiv(channels, block_c))
        _gate_select[grid](
            g, state_out, count, y, rows, tokens, channels,
            SEL_HEADS=attrs.heads, HARDSIGMOID=attrs.gate == "hardsigmoid",
            BLOCK_R=16, BLOCK_C=block_c,
        )  # fmt: skip


def poly_mixer_triton(
    h: Tensor, g: Tensor, state: Tensor, count: Tensor, coeff: Tensor | None, attrs: MixerAttrs
) -> tuple[Tensor, Tensor]:
    """The PolyMixer forward with the Triton kernels; call only when ``uncovered_reason`` is None.

    Returns ``(y (B, N, C) in h's dtype, state_out (B, C) fp32)``.
    """
    reason = uncovered_reason(h, g, coeff, attrs)
    if reason is not None:
        raise ValueError(f"triton PolyMixer does not cover this call: {reason}")
    h, g = h.contiguous(), g.contiguous()
    state = state.to(torch.float32).contiguous()
    count = count.to(torch.float32).contiguous()
    batch, tokens, channels = h.shape
    chunks = token_chunks(tokens)
    partials = _sum_chunks(h, coeff, attrs, chunks)
    state_out = torch.empty((batch, channels), device=h.device, dtype=torch.float32)
    if batch:
        block_c = _block(channels, 256)
        _finalize_state[(triton.cdiv(channels, block_c), batch)](
            state, partials, state_out, channels, chunks, BLOCK_C=block_c
        )
    y = torch.empty_like(h)
    _select(g, state_out, count, y, attrs)
    return y, state_out
