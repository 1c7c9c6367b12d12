"""Checks of a checkpoint as the ``difformer`` task loads it into a model: another Difformer
layout, or another dictionary, fails with what to do instead of a key list or a size mismatch
from deep inside torch."""

from difformer_core.errors import DifformerError

from ..models.difformer import DifformerModel

# Parameter names of checkpoints written by fairseq-difformer 0.1, whose time and
# self-conditioning MLPs used SiLU and whose --embed-norm-before-proj normalised z_t.
PRE_0_2_KEYS = ("decoder.time_embed.mlp.", "decoder.latent_input.self_cond.", "decoder.latent_norm.")


class CheckpointChecks:
    """A task mixin: the checks run before a state dict loads into a model the task built."""

    def register_checkpoint_checks(self, model):
        model.register_load_state_dict_pre_hook(self._check_checkpoint_layout)
        model.register_load_state_dict_pre_hook(self._check_checkpoint_dictionary)

    def _check_checkpoint_layout(self, module, state_dict, prefix, *args):
        """A checkpoint of another Difformer layout fails with what to do, not a key list."""
        if not isinstance(module, DifformerModel):
            return
        keys = list(state_dict)
        if any(k.startswith(prefix + old) for k in keys for old in PRE_0_2_KEYS):
            raise DifformerError(
                "this checkpoint was written by fairseq-difformer 0.1, whose time and "
                "self-conditioning MLPs used SiLU instead of the model's --activation-fn: it cannot "
                "be decoded by this version; retrain it (same command)"
            )
        if any(k.startswith(prefix + name) for k in keys
               for name in ("encoder.project_in_dim.", "decoder.embed_time.", "decoder.self_cond_proj.")):
            raise DifformerError(
                "this checkpoint comes from the original Difformer code: convert it first with "
                "difformer-convert-checkpoint ORIGINAL.pt CONVERTED.pt, then pass CONVERTED.pt to --path"
            )

    def _check_checkpoint_dictionary(self, module, state_dict, prefix, *args):
        """A checkpoint built on another dictionary fails here with the fix, not with a
        "size mismatch" from deep inside torch."""
        expected = len(self.target_dictionary)
        for key in ("decoder.embed_tokens.weight", "decoder.output_projection.weight"):
            weight = state_dict.get(prefix + key)
            if weight is not None and weight.size(0) != expected:
                role = "Difformer model" if isinstance(module, DifformerModel) else "reranker (second --path)"
                raise DifformerError(
                    f"the {role} checkpoint was trained with a dictionary of {weight.size(0)} types, "
                    f"but {self.cfg.data} has {expected}: generate with the data-bin the model was "
                    f"trained on; an AR reranker must be trained on the Difformer model's data-bin "
                    f"(same dict.*.txt)"
                )
