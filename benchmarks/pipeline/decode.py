"""The decoding and scoring steps: fairseq-generate with a decoding setting (its speed and peak
memory from its own log), then difformer-score (SacreBLEU, tokenised BLEU, ROUGE, lengths)."""

import json

from difformer_cli.commands import CommandFailed, run_logged

from .. import measure, systems
from .commands import USER_DIR, shell
from .data import count_sentences


class DecodeSteps:
    """Decoding and scoring inside a :class:`~benchmarks.pipeline.Pipeline`."""

    def generate_command(self, setting, batch_size, checkpoint=None, precision=None, reranker=None,
                         databin=None, extra=(), subset="test"):
        path = str(checkpoint or self.checkpoint(setting.system))
        if setting.reranker:
            path += ":" + str(reranker or self.checkpoint("ar"))
        batching = (["--batch-size", batch_size] if batch_size
                    else ["--max-tokens", systems.DECODE_MAX_TOKENS])
        return [*self.tool("fairseq-generate"), databin or self.databin, "--user-dir", USER_DIR,
                "--task", systems.GENERATE_TASK[setting.system], "--path", path, "--gen-subset", subset,
                *batching, "--required-batch-size-multiple", 1,
                *(systems.PRECISION_ARGS[self.device][precision] if precision
                  else systems.DECODE_DEVICE_ARGS[self.device]), *setting.args, *extra]

    def generate(self, setting, batch_size, checkpoint=None, tag=None, precision=None, reranker=None,
                 databin=None, extra=(), subset="test"):
        """Decode ``subset`` of ``databin`` (default the benchmark's test split) with ``setting``,
        ``extra`` options added: the output file and the speed, peak memory and command."""
        tag = tag or setting.name
        out = self.work / "generate" / f"{tag}-b{batch_size}.txt"
        cmd = self.generate_command(setting, batch_size, checkpoint, precision, reranker, databin, extra, subset)
        log = self.work / "logs" / f"generate-{tag}-b{batch_size}.log"
        usage = run_logged(cmd, log, stdout=out)
        # fairseq-generate's log lines go to stderr or stdout depending on who configured logging.
        speed = measure.generate_speed(log.read_text(encoding="utf-8") + out.read_text(encoding="utf-8"))
        expected = count_sentences(databin or self.databin, subset)
        if speed["sentences"] != expected:
            raise CommandFailed(f"{out}: {speed['sentences']} sentences decoded, the test set has {expected}")
        return out, {**speed, "peak_rss_mib": round(usage["peak_rss_mib"], 1), "command": shell(cmd)}

    def score(self, generate_output):
        # BPE is removed here, not by fairseq-generate, so that lengths are counted in BPE tokens.
        cmd = [*self.tool("difformer-score"), "--generate-output", generate_output, "--remove-bpe",
               "--detok", "en", "--json"]
        log = generate_output.with_suffix(".score.json")
        run_logged(cmd, self.work / "logs" / "score.log", stdout=log)
        return json.loads(log.read_text())
