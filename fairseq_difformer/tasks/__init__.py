from . import difformer_lm_task, difformer_task, sentence_prediction_by_length  # noqa: F401
