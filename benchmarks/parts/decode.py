"""Part decode: every decoding setting on test2016 at batch 100 and batch 1: sentences/s, peak
memory, SacreBLEU and tokenised BLEU (needs train)."""

from .. import systems
from ..pipeline import say


def run(bench):
    selected = [s for s in systems.DECODING_SETTINGS
                if not bench.args.settings or s.name in bench.args.settings]
    for batch_size in bench.scale.decode_batch_sizes:
        for setting in selected:
            say(f"decoding {setting.name} at batch {batch_size}")
            out, speed = bench.generate(setting, batch_size)
            say(f"  {speed['sentences_per_s']:.2f} sentences/s, peak memory {speed['peak_rss_mib']:.0f} MiB")
            batch = f"batch{batch_size}" if batch_size else f"tokens{systems.DECODE_MAX_TOKENS}"
            key = "decode_sentences_per_s" if batch_size == 100 else f"decode_sentences_per_s_{batch}"
            bench.results.set(key, setting.name, speed["sentences_per_s"])
            bench.results.set("decoding", setting.name, batch, speed)
            if batch_size == bench.scale.decode_batch_sizes[0]:
                scores = bench.score(out)
                say(f"  SacreBLEU {scores['sacrebleu']:.2f}, tokenised BLEU {scores['tok_bleu']:.2f}")
                bench.results.set("bleu", setting.name, round(scores["sacrebleu"], 2))
                bench.results.set("tok_bleu", setting.name, round(scores["tok_bleu"], 2))
                bench.results.set("decoding", setting.name, "scores", scores)
    bench.results.set("decoding_settings", {s.name: {"label": s.label, "system": s.system, "steps": s.steps}
                                           for s in systems.DECODING_SETTINGS})
    # Each system's BLEU: that of its best decoding setting.
    for system in systems.SYSTEMS:
        scored = {name: bleu for name, bleu in bench.results.get("bleu", default={}).items()
                  if name in systems.SETTINGS_BY_NAME and systems.SETTINGS_BY_NAME[name].system == system}
        if scored:
            best = max(scored, key=scored.get)
            bench.results.set("bleu", system, scored[best])
            bench.results.set("tok_bleu", system, bench.results.get("tok_bleu", best))
            bench.results.set("best_setting", system, best)
