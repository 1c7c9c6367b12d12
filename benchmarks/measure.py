"""Running the fairseq commands of the benchmark and reading figures out of what they print."""

import json
import os
import platform
import re
from pathlib import Path
from typing import Dict, List


_JSON_LOG = re.compile(r"\| (train_inner|train|valid) \| (\{.*\})\s*$")


def training_log_records(log_text: str, tag: str = "train_inner") -> List[Dict]:
    """The JSON statistics fairseq-train prints with ``--log-format json`` under ``tag``."""
    records = []
    for line in log_text.splitlines():
        match = _JSON_LOG.search(line)
        if match and match.group(1) == tag:
            records.append({k: _number(v) for k, v in json.loads(match.group(2)).items()})
    return records


def final_updates(log_text: str) -> int:
    """The number of updates a fairseq-train run ended at (its last logged statistics)."""
    counts = [r["num_updates"] for r in training_log_records(log_text, "train_inner")]
    counts += [r["train_num_updates"] for r in training_log_records(log_text, "train")
               if "train_num_updates" in r]
    return int(max(counts, default=0))


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def steady_words_per_second(records: List[Dict], skip_intervals: int = 1) -> Dict:
    """Training speed over the logged intervals after the first ``skip_intervals``:

        words/s = Σ_i wpb_i · n_i / Σ_i (wpb_i · n_i / wps_i)

    where interval i has n_i updates of wpb_i target tokens on average at wps_i tokens/s
    (fairseq's ``wpb`` and ``wps``), i.e. total tokens over total time, not a mean of rates.
    The first interval holds start-up costs (first batches, allocator warm-up) and is skipped.
    """
    if len(records) <= skip_intervals:
        raise ValueError(f"need more than {skip_intervals} logged intervals, got {len(records)}")
    start = records[skip_intervals - 1]["num_updates"] if skip_intervals else 0.0
    tokens = seconds = 0.0
    previous = start
    for record in records[skip_intervals:]:
        interval_tokens = record["wpb"] * (record["num_updates"] - previous)
        previous = record["num_updates"]
        tokens += interval_tokens
        seconds += interval_tokens / record["wps"]
    return {"words_per_s": tokens / seconds, "updates": int(previous - start)}


_TRANSLATED = re.compile(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s "
                         r"\(([\d.]+) sentences/s, ([\d.]+) tokens/s\)")


def generate_speed(log_text: str) -> Dict:
    """fairseq-generate's own timing line: sentences, seconds and sentences/s of the decoding loop
    (model loading and data reading excluded)."""
    match = _TRANSLATED.search(log_text)
    if not match:
        raise ValueError("no 'Translated N sentences ... in Xs' line in the fairseq-generate log")
    return {
        "sentences": int(match.group(1).replace(",", "")),
        "seconds": float(match.group(3)),
        "sentences_per_s": float(match.group(4)),
    }


#: the vector extensions that set the CPU's speed here: oneDNN's float32 products use AVX-512 where
#: present, bfloat16 autocast is native only with AVX512_BF16 or AMX, int8 gains most with VNNI
VECTOR_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512_BF16"), ("avx512_vnni", "AVX512_VNNI"),
                ("avx512f", "AVX-512"), ("avx_vnni", "AVX-VNNI"), ("avx2", "AVX2"))


def describe_cpu(cpuinfo: str):
    """(model name with its family/model numbers, the vector extensions in VECTOR_FLAGS it has)
    from /proc/cpuinfo's first processor: two machines sold under one model name ("AMD EPYC")
    differ several-fold in bfloat16 and 1.7-fold in float32 training speed by these."""
    fields = {}
    for line in cpuinfo.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        raise ValueError("no 'model name' in the CPU description")
    name = fields["model name"]
    if "cpu family" in fields and "model" in fields:
        name += f", family {fields['cpu family']} model {fields['model']}"
    flags = set(fields.get("flags", "").split())
    vector = " ".join(label for flag, label in VECTOR_FLAGS if flag in flags)
    return name, vector or None


def machine_description() -> Dict:
    import torch

    import fairseq

    cpu = platform.processor() or "unknown CPU"
    vector = None
    try:
        cpu, vector = describe_cpu(Path("/proc/cpuinfo").read_text())
    except (OSError, ValueError):
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gib = round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "description": f"{cores} CPU cores ({cpu}{', ' + vector if vector else ''}), {memory_gib} GiB RAM, "
                       f"{gpu or 'no GPU'}; "
                       f"Python {platform.python_version()}, torch {torch.__version__} "
                       f"({torch.get_num_threads()} threads), fairseq {fairseq.__version__}",
        "cpu": cpu,
        "cpu_vector": vector,
        "cores": cores,
        "gpu": gpu,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "fairseq": fairseq.__version__,
        "platform": platform.platform(),
    }
