"""The linear-probe grid of the diffssl benchmark: where in a frozen text-free Difformer the
features that tell SST-2's labels apart are.

Every sentence's features at every decoder layer and noise level are extracted once by
``difformer_fusion``'s own feature path (the same z_t, fixed noise and layer outputs the heads
read) and mean-pooled over its positions; each (layer, t) cell is then a logistic regression
(standardised features, L-BFGS, a small L2 penalty) scored on the dev set.
"""

from argparse import Namespace
from typing import List, Sequence, Tuple

import torch


def load(checkpoint, databin, timesteps: Sequence[int], trained: bool = True):
    """The task over ``databin`` and a fusion model reading every layer at ``timesteps``; with
    ``trained=False`` the checkpoint's architecture with fresh weights (torch seed 1)."""
    import fairseq_difformer  # noqa: F401  (registration)
    from fairseq_difformer.models.difformer_fusion import (DifformerFusionModel, base_architecture,
                                                           load_difformer, task_dictionary)
    from fairseq_difformer.tasks.sentence_prediction_by_length import (SentencePredictionByLengthConfig,
                                                                        SentencePredictionByLengthTask)

    # batches of sentences of one length: the features are the same, the padding far less
    cfg = SentencePredictionByLengthConfig(data=str(databin), num_classes=2, regression_target=False,
                                           classification_head_name="probe", seed=1)
    task = SentencePredictionByLengthTask.setup_task(cfg)
    torch.manual_seed(1)
    difformer = load_difformer(str(checkpoint), task_dictionary(task), weights=trained)
    layers = list(range(len(difformer.decoder.layers) + 1))
    args = Namespace(difformer_checkpoint=str(checkpoint), head="fusion", feature_layers=",".join(map(str, layers)),
                     feature_timesteps=",".join(map(str, timesteps)))
    base_architecture(args)
    return task, DifformerFusionModel(args, difformer, 512).eval(), layers


def pooled_features(task, model, split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(K × L × N × d mean-pooled features, N labels) of a split, rows in sentence-id order."""
    from fairseq_difformer.models.fusion_heads import masked_mean

    task.load_dataset(split)
    dataset = task.dataset(split)
    itr = task.get_batch_iterator(dataset=dataset, max_sentences=128, max_positions=model.max_positions(),
                                  ignore_invalid_inputs=True).next_epoch_itr(shuffle=False)
    features, labels = None, torch.zeros(len(dataset), dtype=torch.long)
    with torch.no_grad():
        for sample in itr:
            tokens, ids = sample["net_input"]["src_tokens"], sample["id"]
            extracted = model.extract_features(tokens)
            if features is None:
                features = torch.zeros(len(extracted), len(extracted[0]), len(dataset), model.feature_dim)
            mask = tokens.eq(model.pad)
            for k, per_layer in enumerate(extracted):
                for j, f in enumerate(per_layer):
                    features[k, j, ids] = masked_mean(f, mask)
            labels[ids] = sample["target"].view(-1)
    return features, labels


def probe_accuracy(train_x, train_y, dev_x, dev_y, l2=1e-4, steps=100) -> float:
    """Dev accuracy (%) of a logistic regression fitted on the standardised training features."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    train_x, dev_x = (train_x - mean) / std, (dev_x - mean) / std
    classes = int(max(train_y.max(), dev_y.max())) + 1
    linear = torch.nn.Linear(train_x.size(1), classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(train_x), train_y) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return 100.0 * (linear(dev_x).argmax(-1) == dev_y).float().mean().item()


def probe_grid(checkpoint, databin, timesteps: Sequence[int], trained: bool = True) -> Tuple[List[int], List[List[float]]]:
    """(layers, accuracy[layer][t]) of a linear probe on every layer × t (of the untrained
    denoiser with ``trained=False``)."""
    task, model, layers = load(checkpoint, databin, timesteps, trained)
    train_x, train_y = pooled_features(task, model, "train")
    dev_x, dev_y = pooled_features(task, model, "valid")
    accuracy = [[round(probe_accuracy(train_x[k, j], train_y, dev_x[k, j], dev_y), 2)
                 for k in range(len(timesteps))] for j in range(len(layers))]
    return layers, accuracy
