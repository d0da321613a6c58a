#!/usr/bin/python3
"""Naive float32 numpy forward of a Hugging Face Llama checkpoint (test reference only, never
optimised): reads config.json and model.safetensors (F32/F16/BF16), runs the ids at positions 0..n-1
with rotate_half RoPE, and writes {"logits": [[vocab floats] per position]} as JSON.

usage: reference_forward.py HF_DIR ID,ID,... OUT.json
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


def main():
    hf, ids, out_path = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[3]
    cfg = json.load(open(hf + "/config.json"))
    w = read_safetensors(hf + "/model.safetensors")
    dim = cfg["hidden_size"]
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_heads)
    hd = cfg.get("head_dim", dim // n_heads)
    eps = np.float32(cfg["rms_norm_eps"])
    theta = cfg.get("rope_theta", 10000.0)
    n_layers = cfg["num_hidden_layers"]
    T = len(ids)

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

    x = w["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
    for l in range(n_layers):
        p = "model.layers.%d." % l
        h = rmsnorm(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, n_heads, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, n_kv, hd)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, n_kv, hd)
        q, k = rope(q), rope(k)
        rep = n_heads // n_kv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.float32(np.sqrt(hd)) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att = att / att.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, n_heads * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    logits = (x @ head.T).astype(np.float32)
    json.dump({"logits": [[float(v) for v in row] for row in logits]}, open(out_path, "w"))


if __name__ == "__main__":
    main()
