#!/usr/bin/python3
"""Naive float32 numpy forward of a Hugging Face Llama checkpoint (test reference only, never
optimised): reads config.json and model.safetensors (F32/F16/BF16), runs the ids at positions 0..n-1
with rotate_half RoPE, and writes {"logits": [[vocab floats] per position]} as JSON.

With --q8_0 it emulates the 8-bit block format of llama.cpp (ggml's Q8_0) instead of float weights:
every matrix (and the embedding table) stored as symmetric int8 in blocks of 32 along its input
dimension with one f16 scale d = amax / 127 (q = round(x / d), with 1 / d in float), and every
matmul's input quantized the same way before it, the dot of one block being
(float)isum * (d_w * d_a) summed over the blocks in float (ggml_vec_dot_q8_0_q8_0). Rounding is to
nearest even (ggml's AVX2 path; its scalar reference rounds ties away from zero). A row whose length
is not a multiple of 32 ends with a partial block. Attention, norms and SiLU stay float32.

usage: reference_forward.py HF_DIR IDS OUT [--q8_0]
  IDS: ID,ID,... or several sequences separated by ';' (each run from position 0);
  OUT: .json as above (one sequence), or .bin: the logits of every sequence, position after
  position, as little-endian float32 (positions x vocab).
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(dt)
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def q8_0(x):
    """x (..., k) -> q (..., blocks, 32) int32 and d (..., blocks) float32 (the f16 value)."""
    k = x.shape[-1]
    nb = (k + 31) // 32
    xp = np.zeros(x.shape[:-1] + (nb * 32,), dtype=np.float32)
    xp[..., :k] = x
    xb = xp.reshape(x.shape[:-1] + (nb, 32))
    d = (np.abs(xb).max(-1) / np.float32(127)).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.round(xb * inv[..., None]).astype(np.int32)
    return q, d.astype(np.float16).astype(np.float32)


class Q8Linear:
    """A weight (n, k) in Q8_0; y = x . W^T with x quantized to Q8_0 first."""

    def __init__(self, w):
        self.q, self.d = q8_0(w)

    def __call__(self, x):
        xq, xd = q8_0(x)
        isum = np.einsum("tbi,nbi->tnb", xq, self.q).astype(np.float32)
        scale = (xd[:, None, :] * self.d[None, :, :]).astype(np.float32)
        return (isum * scale).sum(-1, dtype=np.float32)


def forward(cfg, w, ids, q8):
    dim = cfg["hidden_size"]
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_heads)
    hd = cfg.get("head_dim", dim // n_heads)
    eps = np.float32(cfg["rms_norm_eps"])
    theta = cfg.get("rope_theta", 10000.0)
    n_layers = cfg["num_hidden_layers"]
    T = len(ids)

    def linear(name):
        if q8:
            return Q8Linear(w[name])
        m = w[name]
        return lambda x: x @ m.T

    def rmsnorm(x, g):
        ms = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
        return (x / np.sqrt(ms + eps)).astype(np.float32) * g

    inv_freq = (1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float32) / hd))).astype(np.float32)
    pos = np.arange(T, dtype=np.float32)
    freqs = np.outer(pos, inv_freq).astype(np.float32)
    cos = np.cos(np.concatenate([freqs, freqs], -1)).astype(np.float32)
    sin = np.sin(np.concatenate([freqs, freqs], -1)).astype(np.float32)

    def rope(x):  # (T, heads, hd)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        rot = np.concatenate([-x2, x1], -1)
        return x * cos[:, None, :] + rot * sin[:, None, :]

    emb = w["model.embed_tokens.weight"]
    if q8:
        eq, ed = q8_0(emb)
        emb = (eq * ed[..., None]).reshape(emb.shape[0], -1)[:, : emb.shape[1]].astype(np.float32)
    x = emb[ids]
    mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
    for l in range(n_layers):
        p = "model.layers.%d." % l
        h = rmsnorm(x, w[p + "input_layernorm.weight"])
        q = linear(p + "self_attn.q_proj.weight")(h).reshape(T, n_heads, hd)
        k = linear(p + "self_attn.k_proj.weight")(h).reshape(T, n_kv, hd)
        v = linear(p + "self_attn.v_proj.weight")(h).reshape(T, n_kv, hd)
        q, k = rope(q), rope(k)
        rep = n_heads // n_kv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.float32(np.sqrt(hd)) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att = att / att.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, n_heads * hd)
        x = x + linear(p + "self_attn.o_proj.weight")(o)
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        g = linear(p + "mlp.gate_proj.weight")(h)
        u = linear(p + "mlp.up_proj.weight")(h)
        x = x + linear(p + "mlp.down_proj.weight")((g / (1 + np.exp(-g))) * u)
    x = rmsnorm(x, w["model.norm.weight"])
    head = "lm_head.weight" if "lm_head.weight" in w else "model.embed_tokens.weight"
    return linear(head)(x).astype(np.float32)


def main():
    hf, seqs, out_path = sys.argv[1], sys.argv[2].split(";"), sys.argv[3]
    q8 = "--q8_0" in sys.argv[4:]
    cfg = json.load(open(hf + "/config.json"))
    w = read_safetensors(hf + "/model.safetensors")
    outs = [forward(cfg, w, [int(t) for t in s.split(",")], q8) for s in seqs]
    if out_path.endswith(".bin"):
        np.concatenate(outs).astype("<f4").tofile(out_path)
    else:
        json.dump({"logits": [[float(v) for v in row] for row in outs[0]]}, open(out_path, "w"))


if __name__ == "__main__":
    main()
