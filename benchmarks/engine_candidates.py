"""The candidate engines for the Difformer's decoding, one denoiser call each: eager PyTorch
(float32, torch's dynamic int8), torch.compile, ONNX Runtime (the engine folder's float32 and int8
graphs) and OpenVINO (the same ONNX graphs), at batch 1 and batch 100 (test2016 sentences, predicted
lengths + 2), median milliseconds over 30 calls after 3 warm-up calls.

    python -m benchmarks.engine_candidates CHECKPOINT DATABIN THREADS

Needs the engine folder (difformer-translate makes it) and openvino (pip install openvino), which the
project does not otherwise use. Run it with nothing else on the machine."""
import json
import statistics
import sys
import time

import numpy as np
import torch
from fairseq import checkpoint_utils

import fairseq_difformer  # noqa: F401  (registers the model)
from difformer_core.checkpoints import allow_fairseq_checkpoints
from fairseq_difformer.engine.export import default_folder
from fairseq_difformer.engine.runtime import EngineModel
from fairseq_difformer.engine.serving import source_batch
from fairseq_difformer.quantization import quantize_for_decoding

allow_fairseq_checkpoints()
ck, data, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([ck], arg_overrides={"data": data})
m = models[0].eval()
task.load_dataset("test")
ds = task.dataset("test")


def inputs(bsz):
    srcs = [ds[i]["source"] for i in range(bsz)]
    sample = source_batch(srcs, task.source_dictionary.pad())
    enc = m.forward_encoder([sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]])
    lengths = m.predict_lengths(enc) + 2
    z, mask = m.initial_latents(lengths, 4.0)
    t = torch.full((bsz,), 1999, dtype=torch.long)
    return sample, enc, z, mask, t


def timeit(fn, n=30, warm=3):
    for _ in range(warm): fn()
    r = []
    for _ in range(n):
        s = time.perf_counter(); fn(); r.append((time.perf_counter() - s) * 1e3)
    return round(statistics.median(r), 3)


res = {}
eng_f = EngineModel(default_folder(ck), "float32", threads)
eng_i = EngineModel(default_folder(ck), "int8", threads)
q = quantize_for_decoding(m)
import openvino as ov
core = ov.Core()
ovc = {name: core.compile_model(str(default_folder(ck) / name), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
       for name in ("denoiser.onnx", "denoiser.int8.onnx")}
compiled = torch.compile(m.decoder, dynamic=True)
for bsz in (1, 100):
    sample, enc, z, mask, t = inputs(bsz)
    with torch.no_grad():
        res[f"eager_float32_b{bsz}"] = timeit(lambda: m.denoise(z, t, z, enc, mask, {}))
        qenc = q.forward_encoder([sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]])
        res[f"eager_int8_b{bsz}"] = timeit(lambda: q.denoise(z, t, z, qenc, mask, {}))
        try:
            res[f"torch_compile_float32_b{bsz}"] = timeit(lambda: compiled(z, t, z, enc, mask), warm=3)
        except Exception as e:
            res[f"torch_compile_float32_b{bsz}"] = f"failed: {type(e).__name__}: {str(e)[:200]}"
    for eng, name in ((eng_f, "float32"), (eng_i, "int8")):
        eo = eng.forward_encoder([sample["net_input"]["src_tokens"]])
        res[f"ort_{name}_b{bsz}"] = timeit(lambda: eng.denoise(z, t, z, eo, mask))
        feeds = {"z_t": z.numpy(), "t": t.numpy(), "z0_prev": z.numpy(), "padding_mask": mask.numpy(),
                 "source_of": np.arange(bsz, dtype=np.int64), "source_mask": eo["source_mask"]}
        for i, a in enumerate(eo["keys_and_values"]):
            L = eng.layers
            feeds[f"key_{i}" if i < L else f"value_{i - L}"] = a
        c = ovc["denoiser.onnx" if name == "float32" else "denoiser.int8.onnx"]
        try:
            req = c.create_infer_request()
            res[f"openvino_{name}_b{bsz}"] = timeit(lambda: req.infer(feeds))
        except Exception as e:
            res[f"openvino_{name}_b{bsz}"] = f"failed: {type(e).__name__}: {str(e)[:200]}"
    print(json.dumps({k: v for k, v in res.items() if k.endswith(f"b{bsz}")}), flush=True)
print(json.dumps(res, indent=1))
