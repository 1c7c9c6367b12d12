"""The decoding and scoring steps: fairseq-generate with a decoding setting (its speed and peak
memory from its own log), then difformer-score (SacreBLEU, tokenised BLEU, ROUGE, lengths)."""

import json

from difformer_cli.commands import CommandFailed, run_logged
from difformer_cli.whole_split import EVERY_SENTENCE, check_generate_output
from difformer_core.errors import DifformerError

from .. import measure, systems
from .commands import USER_DIR, shell


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
                *batching, *EVERY_SENTENCE,
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
        try:
            check_generate_output(out, databin or self.databin, subset)
        except DifformerError as exc:
            raise CommandFailed(str(exc)) from None
        return out, {**speed, "peak_rss_mib": round(usage["peak_rss_mib"], 1), "command": shell(cmd)}

    def score(self, generate_output):
        # BPE is removed here, not by fairseq-generate, so that lengths are counted in BPE tokens.
        cmd = [*self.tool("difformer-score"), "--generate-output", generate_output, "--remove-bpe",
               "--detok", "en", "--json"]
        log = generate_output.with_suffix(".score.json")
        run_logged(cmd, self.work / "logs" / "score.log", stdout=log)
        return json.loads(log.read_text())
