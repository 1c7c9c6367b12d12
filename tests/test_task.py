"""The difformer task's validation metrics through fairseq's own path: ``Trainer.valid_step`` runs
the task's ``valid_step`` (decoding the batch) and ``reduce_metrics`` per batch, inside the
aggregation fairseq's ``validate`` opens. The logged ``bleu`` / ``rouge*`` are checked against the
corpus metric, computed here, of the hypotheses the generator handed to the task (the untrained
model's, which are empty, or made from the targets in their place) and the reference text."""

import pytest
import sacrebleu
import torch
from conftest import TINY_ARCH, USER_DIR
from fairseq import metrics, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.trainer import Trainer

import fairseq_difformer  # noqa: F401
from fairseq_difformer.tasks.difformer_task import DifformerConfig, DifformerTask
from fairseq_difformer.tasks.validation import rouge_sums
from test_model import DICT, criterion


def setup(databin, *extra):
    """Task, model, criterion and trainer built from command-line flags, as fairseq-train does."""
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(databin), "--user-dir", USER_DIR, "--task", "difformer", "--criterion", "difformer",
        *TINY_ARCH, "--cpu", "--max-tokens", "400", "--seed", "1", "--optimizer", "adam",
        "--lr", "1e-3", "--eval-bleu-args", '{"decoding_steps": 3}', *extra,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("valid")
    torch.manual_seed(1)
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    return task, model, trainer


def record_hypotheses(task, rewrite=None, from_batch=0):
    """Keep the selected hypothesis of every sentence the validation generator decodes; with
    ``rewrite(target, sent_id)``, the generator's hypotheses of the batches from ``from_batch`` on
    are replaced by the tokens it returns (the untrained model here decodes no word at all)."""
    selected = {}
    generate = task.sequence_generator.generate
    batches = []

    def spy(models, sample, **kwargs):
        hypos = generate(models, sample, **kwargs)
        batches.append(sample["id"].tolist())
        for sent_id, target, candidates in zip(sample["id"].tolist(), sample["target"], hypos):
            if rewrite is not None and len(batches) > from_batch:
                candidates[0]["tokens"] = rewrite(target, sent_id)
            selected[sent_id] = candidates[0]["tokens"]
        return hypos

    task.sequence_generator.generate = spy
    return selected, batches


def imperfect_copy(unk, pad):
    """A hypothesis made from the target: 2 + (id mod 3) final tokens dropped (a brevity
    penalty), every seventh token replaced by <unk> (matching nothing), subword units kept."""

    def rewrite(target, sent_id):
        tokens = target[target.ne(pad)]
        words, eos = tokens[:-1], tokens[-1:]
        words = words[: max(len(words) - 2 - sent_id % 3, 1)].clone()
        words[3::7] = unk
        return torch.cat([words, eos])

    return rewrite


def validate(task, trainer):
    """What fairseq_cli.train.validate logs: every batch of the valid split through the trainer."""
    itr = task.get_batch_iterator(task.dataset("valid"), max_tokens=400).next_epoch_itr(shuffle=False)
    with metrics.aggregate(new_root=True) as agg:
        for sample in itr:
            trainer.valid_step(sample)
    return agg.get_smoothed_values()


def words(tokens, dictionary):
    """A hypothesis' text, written out here: its dictionary words without </s>, "@@ " joins
    undone, <unk> as a word no reference has (fairseq's --eval-bleu convention)."""
    symbols = ["UNKNOWNTOKENINHYP" if i == dictionary.unk() else dictionary[i]
               for i in tokens.tolist() if i != dictionary.eos()]
    return (" ".join(symbols) + " ").replace("@@ ", "").rstrip()  # a final "x@@" is "x"


def references(multi30k_bpe, ids):
    """The validation targets straight from the BPE text file the data-bin was built from."""
    lines = (multi30k_bpe / "valid.en").read_text(encoding="utf-8").splitlines()
    return [lines[i].replace("@@ ", "") for i in ids]


@pytest.mark.parametrize("case", ["words", "first batch without words", "no words"])
def test_eval_bleu_logs_the_corpus_bleu_of_the_generated_hypotheses(databin, multi30k_bpe, case):
    """The untrained model predicts length 1 (only </s>): decoded at that length (offset 0),
    every hypothesis is empty. Such a batch must still count its references (brevity penalty),
    and a validation without any word must log BLEU 0, not leave ``bleu`` out
    (--best-checkpoint-metric bleu reads it)."""
    task, _, trainer = setup(databin, "--eval-bleu", "--eval-bleu-remove-bpe", "--decoding-length-offset", "0")
    dictionary = task.target_dictionary
    rewrite = None if case == "no words" else imperfect_copy(dictionary.unk(), dictionary.pad())
    selected, batches = record_hypotheses(task, rewrite, from_batch=int(case != "words"))
    values = validate(task, trainer)

    ids = sorted(selected)
    assert ids == list(range(60)) and len(batches) >= 3  # every sentence decoded once
    hyps = [words(selected[i], dictionary) for i in ids]
    empty = {i for i in ids if hyps[i] == ""}
    assert empty == {"words": set(), "first batch without words": set(batches[0]), "no words": set(ids)}[case]
    expected = sacrebleu.corpus_bleu(hyps, [references(multi30k_bpe, ids)])
    assert values["bleu"] == round(expected.score, 2)
    if case != "no words":
        assert 10 < expected.score < 90 and expected.bp < 1


def test_eval_tokenized_bleu_does_not_retokenise(databin, multi30k_bpe):
    task, _, trainer = setup(databin, "--eval-bleu", "--eval-bleu-remove-bpe", "--eval-tokenized-bleu")
    dictionary = task.target_dictionary
    selected, _ = record_hypotheses(task, imperfect_copy(dictionary.unk(), dictionary.pad()))
    values = validate(task, trainer)
    ids = sorted(selected)
    hyps = [words(selected[i], dictionary) for i in ids]
    refs = references(multi30k_bpe, ids)
    assert values["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score, 2)


def test_eval_rouge_logs_the_sentence_mean_of_the_generated_hypotheses(databin, multi30k_bpe):
    task, _, trainer = setup(databin, "--eval-rouge", "--eval-bleu-remove-bpe")
    dictionary = task.target_dictionary
    selected, _ = record_hypotheses(task, imperfect_copy(dictionary.unk(), dictionary.pad()))
    values = validate(task, trainer)
    ids = sorted(selected)
    assert ids == list(range(60))
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    pairs = zip(references(multi30k_bpe, ids), (words(selected[i], dictionary) for i in ids))
    scores = [scorer.score(ref, hyp) for ref, hyp in pairs]
    for name in ("rouge1", "rouge2", "rougeL"):
        mean = 100 * sum(s[name].fmeasure for s in scores) / len(scores)
        assert values[name] == round(mean, 2), name


def test_rouge_sums_against_hand_counts_and_their_reduction():
    """ROUGE-N F1 = 2·overlap / (|hyp n-grams| + |ref n-grams|); ROUGE-L from the longest common
    subsequence; words stemmed (Porter) and lowercased."""
    hyps = ["the cat sat on the mat", "Dogs were playing", "a man rides"]
    refs = ["the cat is on the mat", "the dog plays", "a man rides a horse"]
    # 1: unigrams the×2 cat on mat shared (5 of 6 each side); bigrams "the cat", "on the",
    #    "the mat" (3 of 5); LCS "the cat on the mat" (5).
    # 2: stems dog were play / the dog play: 2 of 3 shared; no bigram shared; LCS "dog play".
    # 3: 3 of 3 against 3 of 5: F = 2·3/(3+5); bigrams 2 of 2 against 2 of 4; LCS 3.
    expected = {
        "rouge1": [5 / 6, 2 / 3, 6 / 8],
        "rouge2": [3 / 5, 0, 4 / 6],
        "rougeL": [5 / 6, 2 / 3, 6 / 8],
    }
    sums = rouge_sums(hyps, refs)
    assert sums["_rouge_count"] == 3
    for name, values in expected.items():
        assert sums[f"_{name}_sum"] == pytest.approx(100 * sum(values)), name

    # Summed over two workers, the logged value is the mean over all three sentences.
    task = DifformerTask(DifformerConfig(data="tiny", eval_rouge=True), DICT, DICT)
    logs = [{**rouge_sums(hyps[:1], refs[:1]), "sample_size": 1},
            {**rouge_sums(hyps[1:], refs[1:]), "sample_size": 1}]
    with metrics.aggregate() as agg:
        task.reduce_metrics(logs, criterion(None))
        logged = agg.get_smoothed_values()
    for name, values in expected.items():
        assert logged[name] == round(100 * sum(values) / 3, 2), name


def test_running_is_the_command_on_the_call_stack_not_an_import():
    """The task's checks follow the fairseq command that calls it: one imported beside (a test, a
    notebook, the in-process runs of conftest.run_in_process) is not running."""
    import fairseq_cli.generate  # noqa: F401

    from fairseq_difformer.entry_points import running

    assert not running("fairseq_cli.generate")
    command = {"__name__": "fairseq_cli.generate", "running": running}
    exec("def main():\n    return running('fairseq_cli.generate'), running('fairseq_cli.train')", command)
    assert command["main"]() == (True, False)
