#!/usr/bin/env python3
"""Seed corpora and dictionaries of the fuzz targets, made from ../shared by the build.

  make_corpora.py SHARED_DIR EMBER_CONVERT OUT_DIR
writes OUT_DIR/corpus/<target>/* and OUT_DIR/dict/<target>.dict. Only shared models and tokenizers
(and files cut down from them) go in: nothing is committed from elsewhere.
"""
import json
import shutil
import os
import struct
import subprocess
import sys

SEP = b"\n#ember-fuzz-next-file#\n"  # tests/fuzz/fuzz_util.h: kNextFile


def put(out, target, name, data):
    d = os.path.join(out, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def st_header(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), 8 + n


def st_subset(blob, keep):
    """A safetensors file of the tensors of `blob` that `keep(name)` selects."""
    header, start = st_header(blob)
    out_h, data, off = {}, b"", 0
    for name, e in header.items():
        if name == "__metadata__":
            out_h[name] = e
            continue
        if not keep(name):
            continue
        b, end = e["data_offsets"]
        data += blob[start + b:start + end]
        out_h[name] = dict(e, data_offsets=[off, off + end - b])
        off += end - b
    h = json.dumps(out_h, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def trim_tokenizer(tok, n_vocab):
    """tokenizer.json with the first n_vocab pieces and the merges among them."""
    t = json.loads(tok)
    model = t.get("model", {})
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        kept = {k: v for k, v in vocab.items() if v < n_vocab}
        model["vocab"] = kept
        merges = []
        for m in model.get("merges", []):
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a in kept and b in kept and a + b in kept:
                merges.append(m)
        model["merges"] = merges
    t["added_tokens"] = [a for a in t.get("added_tokens", []) if a.get("id", 0) < n_vocab + 64]
    return json.dumps(t, ensure_ascii=False).encode()


def json_words(obj, words):
    """Keys and short string values of a JSON document (dictionary entries), not a vocabulary's."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("vocab", "merges"):
                words.add(k.encode())
                continue
            words.add(k.encode())
            json_words(v, words)
    elif isinstance(obj, list):
        for v in obj[:64]:
            json_words(v, words)
    elif isinstance(obj, str) and 0 < len(obj) <= 24:
        words.add(obj.encode())


def write_dict(out, target, words):
    os.makedirs(os.path.join(out, "dict"), exist_ok=True)
    with open(os.path.join(out, "dict", target + ".dict"), "w") as f:
        for w in sorted(words):
            esc = "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else "\\x%02x" % c for c in w)
            f.write('"%s"\n' % esc)


def main():
    shared, convert, out = sys.argv[1:4]
    m = lambda *p: os.path.join(shared, "models", *p)
    tk = lambda *p: os.path.join(shared, "tokenizers", *p)
    models = {"stories": m("stories260K", "hf"), "aidreams": m("aidreams260K", "hf")}

    # model_load: converted files (small options), and a tokenizer-only one.
    tmp = os.path.join(out, "convert")
    os.makedirs(tmp, exist_ok=True)
    runs = [("stories-u8.ember", models["stories"], ["--quant", "u8"]),
            ("stories-u8-g32-f32.ember", models["stories"],
             ["--quant", "u8", "--group", "32", "--params", "f32", "--act-group", "0"]),
            ("stories-f16.ember", models["stories"], ["--quant", "f16"]),
            ("aidreams-u8-row.ember", models["aidreams"], ["--quant", "u8", "--group", "0"]),
            ("tok-stories.ember", models["stories"], ["--tokenizer-only"])]
    for name, src, opts in runs:
        path = os.path.join(tmp, name)
        subprocess.run([convert, src, "-o", path, "--force"] + opts, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        put(out, "model_load", name, read(path))
    write_dict(out, "model_load", {b"EMBR", b"model.layers.0.self_attn.q_proj.weight",
                                   b"model.norm.weight", b"lm_head.weight"})

    # kv_state: the harness writes its seeds (states it saves from the u8 file above) at start-up;
    # a new corpus directory makes it write them again.
    kv = os.path.join(out, "corpus", "kv_state")
    shutil.rmtree(kv, ignore_errors=True)
    os.makedirs(kv)
    write_dict(out, "kv_state", {b"EMBERKVS", b"\x01\x00\x00\x00", b"\x20\x00\x00\x00"})

    # tokenizer: selector byte (tokenizer, flags) + text from the shared test vectors.
    texts = []
    for name in ("llama2", "mistral", "llama3", "gpt2"):
        with open(tk(name, "vectors.jsonl"), encoding="utf-8") as f:
            for line in f:
                t = json.loads(line).get("text")
                if isinstance(t, str) and t not in texts:
                    texts.append(t)
    texts += ["<s>Hello</s>", "<|begin_of_text|><|eot_id|>", "<|endoftext|>", "\u2581\u2581x"]
    for i, t in enumerate(texts[:120]):
        put(out, "tokenizer", "text-%03d" % i, bytes([(i * 7) & 0xff]) + t.encode("utf-8"))
    put(out, "tokenizer", "bytes", bytes([0x35]) + bytes(range(256)))
    write_dict(out, "tokenizer", {b"<s>", b"</s>", b"<unk>", b"<|endoftext|>", b"<|begin_of_text|>",
                                  b"<|eot_id|>", b"[INST]", b"\xe2\x96\x81", b"<0x0A>"})

    # safetensors: the adapter's weights, and small files cut from the shared checkpoints.
    words = {b"dtype", b"shape", b"data_offsets", b"__metadata__", b"F32", b"F16", b"BF16", b"I64",
             b"format", b"pt"}
    put(out, "safetensors", "lora-attn-r8",
        read(m("stories260K", "lora", "attn-r8", "adapter_model.safetensors")))
    for d in ("hf", "hf-bf16", "hf-f16"):
        blob = read(m("stories260K", d, "model.safetensors"))
        put(out, "safetensors", "stories-" + d + "-norms",
            st_subset(blob, lambda n: "norm" in n and ("layers.0." in n or "layers.1." in n)))
        json_words(st_header(blob)[0], words)
    write_dict(out, "safetensors", words)

    # config_json: config.json + generation_config.json of each model, and variants.
    words = {SEP}
    for name, d in models.items():
        cfg = read(os.path.join(d, "config.json"))
        gen = read(os.path.join(d, "generation_config.json"))
        put(out, "config_json", name, cfg + SEP + gen)
        c = json.loads(cfg)
        json_words(c, words)
        json_words(json.loads(gen), words)
        for var, extra in (("rope-llama3", {"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                                             "low_freq_factor": 1.0,
                                                             "high_freq_factor": 4.0,
                                                             "original_max_position_embeddings": 64}}),
                           ("gqa-tied", {"num_key_value_heads": 1, "tie_word_embeddings": True,
                                         "eos_token_id": [1, 2]})):
            v = dict(c, **extra)
            json_words(v, words)
            put(out, "config_json", name + "-" + var, json.dumps(v).encode())
    write_dict(out, "config_json", words)

    # tokenizer_json: the models' tokenizers, and the shared ones cut to their first pieces.
    words = {SEP}
    for name, d in models.items():
        tok, cfg = read(os.path.join(d, "tokenizer.json")), read(os.path.join(d, "tokenizer_config.json"))
        put(out, "tokenizer_json", name, tok + SEP + cfg)
        json_words(json.loads(tok), words)
        json_words(json.loads(cfg), words)
    for name in ("llama2", "mistral", "llama3", "gpt2"):
        tok = trim_tokenizer(read(tk(name, "tokenizer.json")), 400)
        cfg_path = tk(name, "tokenizer_config.json")
        cfg = read(cfg_path) if os.path.exists(cfg_path) else b""
        if len(cfg) > 4096:  # llama3's lists 256 added tokens: keep its other fields
            c = json.loads(cfg)
            c.pop("added_tokens_decoder", None)
            cfg = json.dumps(c).encode()
        put(out, "tokenizer_json", name + "-400", tok + (SEP + cfg if cfg else b""))
        json_words(json.loads(tok), words)
    write_dict(out, "tokenizer_json", words)

    # lora: adapter_config.json + adapter_model.safetensors; variants of the config.
    a = m("stories260K", "lora", "attn-r8")
    cfg, weights = read(os.path.join(a, "adapter_config.json")), read(os.path.join(a, "adapter_model.safetensors"))
    put(out, "lora", "attn-r8", cfg + SEP + weights)
    c = json.loads(cfg)
    words = {SEP, b"lora_A", b"lora_B", b"lora_embedding_A", b"lora_embedding_B", b"modules_to_save",
             b"base_model.model.", b"DORA", b"LORA"}
    json_words(c, words)
    json_words(st_header(weights)[0], words)
    put(out, "lora", "attn-r8-rslora", json.dumps(dict(c, use_rslora=True)).encode() + SEP + weights)
    put(out, "lora", "attn-r8-patterns",
        json.dumps(dict(c, rank_pattern={"q_proj": 8}, alpha_pattern={"k_proj": 4})).encode() + SEP +
        weights)
    qk = st_subset(weights, lambda n: "q_proj" in n)
    put(out, "lora", "q-only", json.dumps(dict(c, target_modules=["q_proj"])).encode() + SEP + qk)
    write_dict(out, "lora", words)

    # batch_file: ember-run --batch-file files: plain and JSON lines, every field, edge values.
    with open(m("stories260K", "expected", "greedy.json"), encoding="utf-8") as f:
        prompts = [r["prompt"] for r in json.load(f)["results"]]
    line = lambda **kw: json.dumps(kw, ensure_ascii=False)
    put(out, "batch_file", "plain", "\n".join(prompts).encode() + b"\n")
    put(out, "batch_file", "json-greedy",
        "\n".join(line(prompt=p, max_tokens=3, temperature=0) for p in prompts).encode())
    put(out, "batch_file", "every-field", "\r\n".join([
        line(prompt=prompts[0], max_tokens=3, temperature=0.8, top_k=40, top_p=0.9, seed=7,
             stop=["\n\n", "dog"]),
        line(prompt=prompts[2], stop="little", seed=0, top_k=0, top_p=1.0, temperature=1.5),
        line(prompt="", max_tokens=None, temperature=None, stop=[]),
        prompts[1]]).encode())
    put(out, "batch_file", "edges", "\n".join([
        line(prompt="x", max_tokens=0), line(prompt="x", max_tokens=4294967295),
        line(prompt="x", max_tokens=16.0), line(prompt="x", top_k=-1),
        line(prompt="x", top_k=2147483647), line(prompt="x", top_p=0),
        line(prompt="x", temperature=-1), line(prompt="x", temperature=3.4e38),
        line(prompt="x", seed=18446744073709551615),
        line(prompt="x", stop=["a", "b", "c", "d"]), line(prompt="x", stop=["a", "b", "c", "d", "e"]),
        line(prompt="x", stop="s" * 64), line(prompt="x", stop="s" * 65), line(prompt="x", stop=""),
        line(prompt="<s></s>\u2581\u00e9\u4e2d\U0001F600"), line(prompt=" ".join(prompts) * 3),
        "", "\r", "{}"]).encode())
    put(out, "batch_file", "errors", b"\n".join([
        b'{"prompt": 42}', b"{not json", b"[]", b"{\"prompt\": \"x\", \"stop\": [1]}",
        b'{"prompt": "x", "stop": {"a": 1}}', b'{"prompt": "x", "max_tokens": -1}',
        b'{"prompt": "x", "max_tokens": 1e20}', b'{"prompt": "x", "max_tokens": 4294967296}',
        b'{"prompt": "x", "max_tokens": 2.5}', b'{"prompt": "x", "temperature": 1e300}',
        b'{"prompt": "x", "top_p": "0.9"}', b'{"prompt": "x", "top_k": 2147483648}',
        b'{"prompt": "x", "seed": -1}', b'{"prompt": "x", "seed": 1.8446744073709552e19}',
        b'{"prompt": "x", "max_tokens": 1e400}', b'{"prompt": "x\\u0000y"}', b"\xff\xfe{",
        b'{"prompt": "x", "temperature": "\xff"}']))
    write_dict(out, "batch_file", {b"prompt", b"max_tokens", b"temperature", b"top_k", b"top_p",
                                   b"seed", b"stop", b'{"', b'":', b'",', b"null", b"true",
                                   b"\\u0000", b"\r\n", b"1e309", b"-0", b"4294967296"})


if __name__ == "__main__":
    main()
