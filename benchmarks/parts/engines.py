"""Part engines: the AR-route models as users serve them. The AR checkpoint converted with
CTranslate2 (int8 and float32; greedy and beam 5), the same checkpoint on fairseq-generate (greedy,
beam 5), and the AR-initialised Difformer through fairseq-generate and through the serving path on
ONNX Runtime (fairseq_difformer/engine/: the default decoding, and 3 lengths × 2 noises reranked by
the AR model on CTranslate2), on test2016.

Every system decodes the data-bin's BPE'd test sentences, and every output is scored by
difformer-score (BPE removed, Moses-detokenised SacreBLEU). Speeds are of the decoding alone (models
loaded, one warm-up pass), the median of ``REPEATS`` passes over the test set:

* batch 100 (throughput): each system on both cores in its best configuration among those tried
  (CTranslate2: one thread per batch with two batches at once, or two threads on one batch;
  ONNX Runtime: two intra-op threads; fairseq-generate: torch's two threads), recorded with it;
* batch 1 (one stream): sentence after sentence, CTranslate2 and ONNX Runtime on one thread each
  (the faster setting for a single stream here), fairseq-generate as it runs.

The models are the quickstart's (``--engines-models``, default work/quickstart: ar/, checkpoints/,
distill/bin). Each record is written as it finishes; a rerun measures only the records missing for
the same checkpoints.
"""

import json
import os
import statistics
import time
from pathlib import Path

from difformer_cli.commands import run_logged
from difformer_cli.whole_split import EVERY_SENTENCE, check_generate_output

from .. import measure
from ..pipeline import say, shell
from ..pipeline.commands import USER_DIR

#: timed passes over the test set per measurement (the median is reported)
REPEATS = 3
#: fairseq-generate at batch 1 decodes this many test sentences (sentence after sentence, it is the
#: slowest measurement by far; the first sentences in length order, as fairseq sorts them)
FAIRSEQ_BATCH1_SENTENCES = 1000
#: fairseq-generate's length limit for the AR model, as the quickstart's AR greedy decoding
AR_LENGTH_LIMIT = ["--max-len-a", "1.2", "--max-len-b", "10"]
#: the Difformer decodings: (record name, decoding options, reranked by the AR model)
DIFFORMER_DECODINGS = (
    ("difformer_default", {}, False),
    ("difformer_3x2_rerank", {"length_beam_size": 3, "noise_beam_size": 2, "ppl_mbr": True}, True),
)


class Models:
    """The AR checkpoint, the Difformer checkpoint and the data-bin the part measures."""

    def __init__(self, folder: Path):
        self.ar = folder / "ar" / "checkpoint_last.pt"
        self.difformer = folder / "checkpoints" / "checkpoint_last.pt"
        self.databin = folder / "distill" / "bin"
        missing = [p for p in (self.ar, self.difformer, self.databin) if not p.exists()]
        if missing:
            raise SystemExit(f"benchmark engines: {missing[0]} not found: run `make quickstart` first, or give "
                             f"--engines-models a folder with ar/, checkpoints/ and distill/bin")

    def fingerprint(self):
        """What identifies the models: each checkpoint's size and modification time."""
        return {name: {"path": str(path), "size": path.stat().st_size, "mtime": path.stat().st_mtime}
                for name, path in (("ar", self.ar), ("difformer", self.difformer))}


def test_split(databin: Path):
    """The test sentences as BPE token strings (without </s>): sources and references, in order."""
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(str(databin / "dict.de.txt"))

    def lines(lang):
        dataset = data_utils.load_indexed_dataset(str(databin / f"test.de-en.{lang}"), dictionary)
        return [dictionary.string(dataset[i][:-1]).split() for i in range(len(dataset))]

    return lines("de"), lines("en")


def median_speed(decode, sentences, repeats=REPEATS):
    """decode() once to warm up, then ``repeats`` timed passes: (median sentences/s, every pass's)."""
    decode()
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode()
        speeds.append(sentences / (time.perf_counter() - start))
    return round(statistics.median(speeds), 1), [round(s, 1) for s in speeds]


class EnginesPart:
    def __init__(self, bench):
        self.bench = bench
        self.models = Models(bench.args.engines_models)
        self.work = bench.work / "engines"
        self.work.mkdir(parents=True, exist_ok=True)
        self.sources, self.references = test_split(self.models.databin)
        (self.work / "references.bpe").write_text("".join(" ".join(r) + "\n" for r in self.references))

    def record(self, name):
        return self.bench.results.get("engines", "records", name)

    def done(self, name):
        return self.bench.results.get("engines", "models") == self.models.fingerprint() and self.record(name)

    def save(self, name, record):
        self.bench.results.set("engines", "records", name, record)
        say(f"  {name}: BLEU {record.get('bleu')}, {record.get('sentences_per_s')} sentences/s at batch 100, "
            f"{record.get('sentences_per_s_batch1')} at batch 1")

    def score(self, name, hypotheses):
        """difformer-score of BPE'd hypotheses (input order) against the references."""
        path = self.work / f"{name}.bpe"
        path.write_text("".join(" ".join(h) + "\n" for h in hypotheses))
        out = self.work / f"{name}.score.json"
        run_logged([*self.bench.tool("difformer-score"), "--hyp", path, "--ref", self.work / "references.bpe",
                    "--remove-bpe", "--detok", "en", "--json"], self.work / "score.log", stdout=out)
        return json.loads(out.read_text())

    # CTranslate2 ---------------------------------------------------------------------------------

    def ct2(self, name, quantization, beam):
        from fairseq_difformer import ctranslate2_ar

        folder = ctranslate2_ar.convert(self.models.ar, self.models.databin, quantization)
        limit = ctranslate2_ar.length_limit(max(map(len, self.sources)), 1.2, 10)

        def decode_with(translator, batch_size):
            """All test sentences: at batch 1 one after the other, each waited for (one stream); else
            batches of ``batch_size`` in length order, all queued at once for the translator's replicas."""
            def one_stream():
                return [translator.translate_batch([s], beam_size=beam, max_decoding_length=limit,
                                                   suppress_sequences=[["<blank>"]])[0].hypotheses[0]
                        for s in self.sources]

            def queued():
                order = sorted(range(len(self.sources)), key=lambda i: len(self.sources[i]))
                pending = [(chunk, translator.translate_batch(
                    [self.sources[i] for i in chunk], beam_size=beam, max_decoding_length=limit,
                    suppress_sequences=[["<blank>"]], asynchronous=True))
                    for chunk in (order[s:s + batch_size] for s in range(0, len(order), batch_size))]
                out = [None] * len(self.sources)
                for chunk, results in pending:
                    for i, result in zip(chunk, results):
                        out[i] = result.result().hypotheses[0]
                return out
            return one_stream if batch_size == 1 else queued

        configurations = {"intra_threads 1, inter_threads 2": dict(intra_threads=1, inter_threads=2),
                          "intra_threads 2, inter_threads 1": dict(intra_threads=2, inter_threads=1)}
        throughput = {}
        for label, threads in configurations.items():
            translator = ctranslate2_ar.translator(folder, **threads)
            throughput[label] = median_speed(decode_with(translator, 100), len(self.sources))
            hypotheses = decode_with(translator, 100)()
            del translator
        best = max(throughput, key=lambda label: throughput[label][0])
        single = ctranslate2_ar.translator(folder, intra_threads=1, inter_threads=1)
        batch1 = median_speed(decode_with(single, 1), len(self.sources))
        scores = self.score(name, hypotheses)
        self.save(name, {
            "bleu": round(scores["sacrebleu"], 2), "length_ratio": round(scores["length_ratio"], 3),
            "sentences_per_s": throughput[best][0], "sentences_per_s_batch1": batch1[0],
            "configuration": f"CTranslate2 {quantization}, beam {beam}; batch 100: {best}; batch 1: intra_threads 1",
            "throughput_by_configuration": {label: value[0] for label, value in throughput.items()},
            "runs": {"batch100": throughput[best][1], "batch1": batch1[1]},
            "call": f"ctranslate2.Translator({folder.name}, compute_type={quantization}).translate_batch(beam_size={beam}, "
                    f"max_batch_size=100 sorted by length, asynchronous, max_decoding_length={limit})",
        })

    # fairseq-generate ----------------------------------------------------------------------------

    def fairseq_generate(self, tag, batch_size, path, options, repeats=REPEATS):
        """fairseq-generate on the test split: (output file, median sentences/s of its own timing
        line, every run's, the command)."""
        cmd = ["fairseq-generate", self.models.databin, "--user-dir", USER_DIR, "--path", path, "--gen-subset", "test",
               "--batch-size", batch_size, *EVERY_SENTENCE, "--cpu", *options]
        out = self.work / f"generate-{tag}-b{batch_size}.txt"
        speeds = []
        for _ in range(repeats):
            log = self.work / f"generate-{tag}-b{batch_size}.log"
            run_logged(cmd, log, stdout=out)
            check_generate_output(out, self.models.databin, "test")
            speeds.append(measure.generate_speed(log.read_text() + out.read_text())["sentences_per_s"])
        return out, round(statistics.median(speeds), 1), speeds, shell(cmd)

    def fairseq_ar(self, name, beam):
        options = ["--task", "translation", "--beam", str(beam), *AR_LENGTH_LIMIT]
        out, speed, runs, command = self.fairseq_generate(name, 100, self.models.ar, options)
        _, speed1, runs1, _ = self.fairseq_generate(name, 1, self.models.ar, options, repeats=1)
        scores = self.bench.score(out)
        self.save(name, {
            "bleu": round(scores["sacrebleu"], 2), "length_ratio": round(scores["length_ratio"], 3),
            "sentences_per_s": speed, "sentences_per_s_batch1": speed1,
            "configuration": f"fairseq-generate, beam {beam}, torch {os.cpu_count()} threads",
            "runs": {"batch100": runs, "batch1": runs1}, "command": command,
        })

    # the Difformer -------------------------------------------------------------------------------

    def difformer(self, name, options, reranked):
        from fairseq_difformer.engine.serving import EngineTranslator, load_reranker, selection_of

        generate_options = ["--task", "difformer", "--seed", "1"]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            generate_options += [flag] if value is True else [flag, str(value)]
        path = f"{self.models.difformer}:{self.models.ar}" if reranked else str(self.models.difformer)
        if reranked:
            generate_options += ["--reranker-engine", "ctranslate2"]
        out, generate_speed, generate_runs, command = self.fairseq_generate(name, 100, path, generate_options)
        _, generate_speed1, _, _ = self.fairseq_generate(name, 1, path, generate_options, repeats=1)
        generate_scores = self.bench.score(out)

        selection = selection_of(options)
        reranker = load_reranker(self.models.ar, self.models.databin) if reranked else None
        if reranked:
            options = {**options, "reranker_engine": "ctranslate2"}
        configurations = {"1 thread, 2 streams": (1, 2), "2 threads, 1 stream": (2, 1)}
        throughput, translators = {}, {}
        for label, (threads, streams) in configurations.items():
            translator = translators.get(threads) or EngineTranslator.load(
                self.models.difformer, self.models.databin, precision="int8", threads=threads, options=options,
                selection=selection, reranker=reranker)
            translators[threads] = translator
            ids = [translator.text.src_dict.encode_line(" ".join(s), add_if_not_exist=False) for s in self.sources]
            throughput[label] = median_speed(lambda: translator.translate_ids(ids, 100, streams), len(ids))
        # One stream's output: the streams do not change it.
        hypotheses = [translators[1].text.tgt_dict.string(t).split() for t in translators[1].translate_ids(ids, 100)]
        batch1 = median_speed(lambda: translators[1].translate_ids(ids, 1), len(ids))
        scores = self.score(name, hypotheses)
        best = max(throughput, key=lambda label: throughput[label][0])
        self.save(name, {
            "bleu": round(scores["sacrebleu"], 2), "length_ratio": round(scores["length_ratio"], 3),
            "sentences_per_s": throughput[best][0], "sentences_per_s_batch1": batch1[0],
            "bleu_fairseq_generate": round(generate_scores["sacrebleu"], 2),
            "sentences_per_s_fairseq_generate": generate_speed,
            "sentences_per_s_batch1_fairseq_generate": generate_speed1,
            "configuration": f"ONNX Runtime int8; batch 100: {best}; batch 1: 1 thread, 1 stream"
                             + ("; reranker CTranslate2 int8 (intra_threads 1, inter_threads 2)" if reranked else ""),
            "throughput_by_configuration": {label: value[0] for label, value in throughput.items()},
            "runs": {"batch100": throughput[best][1], "batch1": batch1[1], "fairseq_generate": generate_runs},
            "call": f"EngineTranslator.load({self.models.difformer.name}, precision='int8', options={options})"
                    f".translate_ids(test sources, batch_size)",
            "command": f"difformer-translate {self.models.difformer} --data-bin {self.models.databin} --input-format bpe "
                       + " ".join(generate_options[4:]) + (f" --reranker {self.models.ar}" if reranked else ""),
            "fairseq_generate_command": command,
        })

    def run(self):
        if self.bench.results.get("engines", "models") != self.models.fingerprint():
            self.bench.results.set("engines", {"models": self.models.fingerprint(), "records": {}})
        self.bench.results.set("engines", "machine", measure.machine_description())
        steps = [
            ("ct2_int8_greedy", lambda: self.ct2("ct2_int8_greedy", "int8", 1)),
            ("ct2_int8_beam5", lambda: self.ct2("ct2_int8_beam5", "int8", 5)),
            ("ct2_float32_greedy", lambda: self.ct2("ct2_float32_greedy", "float32", 1)),
            ("fairseq_greedy", lambda: self.fairseq_ar("fairseq_greedy", 1)),
            ("fairseq_beam5", lambda: self.fairseq_ar("fairseq_beam5", 5)),
            *((name, lambda n=name, o=options, r=reranked: self.difformer(n, o, r))
              for name, options, reranked in DIFFORMER_DECODINGS),
        ]
        for name, step in steps:
            if self.done(name):
                say(f"engines: {name} already measured on these checkpoints")
                continue
            say(f"engines: {name}")
            step()
        records = self.bench.results.get("engines", "records")
        self.bench.results.set("engines", "ratios", ratios(records))


def ratios(records):
    """The Difformer's speed over CTranslate2 int8 (greedy, and beam 5 for the reranked pool), at
    batch 100 and at batch 1, from the records of one run."""
    out = {}
    greedy, beam = records.get("ct2_int8_greedy"), records.get("ct2_int8_beam5")
    for name, record in records.items():
        if not name.startswith("difformer") or greedy is None:
            continue
        baseline = beam if "rerank" in name and beam else greedy
        base_name = "ct2_int8_beam5" if baseline is beam else "ct2_int8_greedy"
        out[name] = {
            "baseline": base_name,
            "batch100": round(record["sentences_per_s"] / baseline["sentences_per_s"], 2),
            "batch1": round(record["sentences_per_s_batch1"] / baseline["sentences_per_s_batch1"], 2),
        }
    return out


def run(bench):
    EnginesPart(bench).run()
