"""The DifFormer / DifFeed benchmark on SST-2 (``python -m benchmarks.diffssl``): probes and
fusion heads over the frozen features of a text-free Difformer, against an encoder trained from
scratch. The runner is :mod:`.cli`, the feature probes :mod:`.probe`, the report :mod:`.report`."""
