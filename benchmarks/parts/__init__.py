"""The benchmark's experiment parts, one module each; ``run(pipeline)`` runs one.

PARTS lists them in the order they run when several are given: each needs only what the parts
before it left in the work folder. The parts of OPT_IN run only when named (hours on a CPU)."""

from . import (ablations, decode, distill, engines, fewer_calls, from_ar, from_ar_plateau, precision, profile, samplers,
               summarization, sweep, throughput, train)

PARTS = {
    "throughput": throughput.run,
    "train": train.run,
    "decode": decode.run,
    "samplers": samplers.run,
    "distill": distill.run,
    "from_ar": from_ar.run,
    "from_ar_plateau": from_ar_plateau.run,
    "engines": engines.run,
    "fewer_calls": fewer_calls.run,
    "summarization": summarization.run,
    "precision": precision.run,
    "ablations": ablations.run,
    "sweep": sweep.run,
    "profile": profile.run,
}
#: parts that run only when --part names them
OPT_IN = ("from_ar_plateau",)
