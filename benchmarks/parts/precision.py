"""Part precision: the same checkpoints decoded in float32 and in fp16 (--fp16): BLEU of each and
the difference (needs train)."""

from .. import systems
from ..pipeline import say


def run(bench):
    """Each checkpoint decoded in float32 and in fp16 (the same noise seed): the BLEU each
    gives and the difference (fp16 − float32)."""
    for name in systems.PRECISION_SETTINGS:
        setting = systems.SETTINGS_BY_NAME[name]
        scores = {}
        for precision in ("float32", "fp16"):
            say(f"decoding {name} in {precision}")
            out, speed = bench.generate(setting, 100, tag=f"{name}-{precision}", precision=precision)
            scores[precision] = {"bleu": round(bench.score(out)["sacrebleu"], 2),
                                 "sentences_per_s": speed["sentences_per_s"], "command": speed["command"]}
        difference = round(scores["fp16"]["bleu"] - scores["float32"]["bleu"], 2)
        say(f"  SacreBLEU float32 {scores['float32']['bleu']}, fp16 {scores['fp16']['bleu']} ({difference:+.2f})")
        bench.results.set("precision", name, {**scores, "difference": difference})
