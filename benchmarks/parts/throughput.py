"""Part throughput: each system trained for the same number of updates: words/s and peak memory."""

import shutil

from difformer_cli.commands import run_logged

from .. import measure, systems
from ..pipeline import say, shell


def run(bench):
    updates = bench.scale.throughput_updates
    for system in systems.SYSTEMS:
        say(f"throughput: {system}, {updates} updates")
        save_dir = bench.work / "throughput" / system
        shutil.rmtree(save_dir, ignore_errors=True)
        cmd = bench.train_command(system, save_dir, [
            "--max-update", updates, "--disable-validation", "--no-save",
            "--log-format", "json", "--log-interval", bench.scale.log_interval])
        log = bench.work / "logs" / f"throughput-{system}.log"
        usage = run_logged(cmd, log)
        speed = measure.steady_words_per_second(measure.training_log_records(log.read_text()))
        say(f"  {speed['words_per_s']:.0f} words/s, peak memory {usage['peak_rss_mib']:.0f} MiB")
        bench.results.set("train_words_per_s", system, round(speed["words_per_s"], 1))
        bench.results.set("train_peak_rss_mib", system, round(usage["peak_rss_mib"], 1))
        bench.results.set("throughput", system, {**speed, "total_updates": updates,
                                                "command": shell(cmd)})
