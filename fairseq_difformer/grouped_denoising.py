"""One denoiser call over candidates of different lengths: the candidates grouped by length
(:func:`~.length_groups.length_groups`), each group run at its own width with its source encoding
and its cross-attention cache kept across the decoding steps."""

from dataclasses import dataclass

import torch

from .length_groups import GROUP_CALL_COST, length_groups


@dataclass
class LengthGroup:
    """Candidates denoised together: their rows, their width (longest length), the source
    encoding in their order, and the cross-attention cache kept across the steps."""

    rows: torch.Tensor
    width: int
    encoder_out: dict
    cache: dict


def group_candidates(model, encoder_out, lengths, candidates_per_source):
    """The candidates of lengths ``lengths`` (B·K, source b's K candidates at rows b·K … b·K + K − 1)
    as :class:`LengthGroup` s (grouped at :data:`GROUP_CALL_COST`), each with the encoding of its
    rows' sources."""
    bsz = len(lengths) // candidates_per_source
    source_of = torch.arange(bsz, device=lengths.device).repeat_interleave(candidates_per_source)
    return [
        LengthGroup(rows, int(lengths[rows].max()),
                    model.encoder.reorder_encoder_out(encoder_out, source_of[rows]), {})
        for rows in length_groups(lengths, GROUP_CALL_COST)
    ]


def denoise_groups(model, groups, z_t, timestep, z0_prev, padding_mask):
    """ẑ0 = f(z_t, t, ẑ0_prev, x) of every candidate (in z_t's dtype), each group denoised at its
    own width (the positions beyond a group's width are padding for all its rows and stay 0)."""
    if len(groups) == 1:  # all candidates at full width: no copies in or out
        (group,) = groups
        t = torch.full((z_t.size(0),), timestep, dtype=torch.long, device=z_t.device)
        return model.denoise(z_t, t, z0_prev, group.encoder_out, padding_mask, group.cache).to(z_t.dtype)
    z0_hat = torch.zeros_like(z_t)
    for group in groups:
        rows, width = group.rows, group.width
        t = torch.full((len(rows),), timestep, dtype=torch.long, device=z_t.device)
        z0_hat[rows, :width] = model.denoise(
            z_t[rows, :width], t, z0_prev[rows, :width], group.encoder_out,
            padding_mask[rows, :width], group.cache,
        ).to(z_t.dtype)
    return z0_hat
