"""A catalogue of bad config inputs: each is one ``error:`` line and exit code 2, before any data
loads or any training starts (``run_recbole_coldmeta.py``, in-process)."""

from pathlib import Path

import pytest

from recbole_coldmeta.quick_start.cli import main

#: ``(id, arguments, the key the error line names)``; the dataset is ``tiny`` unless given.
CASES = [
    # wrong type
    ("epochs-not-an-integer", ["--model=MeLU", "--epochs=abc"], "epochs"),
    ("epochs-a-float", ["--model=MeLU", "--epochs=2.5"], "epochs"),
    ("seed-not-an-integer", ["--model=BPR", "--seed=abc"], "seed"),
    ("learning-rate-not-a-number", ["--model=MeLU", "--learning_rate=abc"], "learning_rate"),
    ("hidden-sizes-a-tuple", ["--model=MeLU", "--mlp_hidden_size=64,64"], "mlp_hidden_size"),
    ("also-test-states-a-string", ["--model=MeLU", "--also_test_states=b"], "also_test_states"),
    ("source-domain-a-string", ["--model=PTUPCDR", "--source_domain=books"], "source_domain"),
    # out of range
    ("learning-rate-negative", ["--model=MeLU", "--learning_rate=-1"], "learning_rate"),
    ("task-batch-size-zero", ["--model=MeLU", "--task_batch_size=0"], "task_batch_size"),
    ("epochs-zero", ["--model=MeLU", "--epochs=0"], "epochs"),
    ("epochs-negative", ["--model=BPR", "--epochs=-1"], "epochs"),
    ("seed-negative", ["--model=BPR", "--seed=-1"], "seed"),
    ("dropout-one", ["--model=MeLU", "--dropout_prob=1.0"], "dropout_prob"),
    ("train-batch-size-zero", ["--model=BPR", "--train_batch_size=0"], "train_batch_size"),
    ("topk-zero", ["--model=BPR", "--topk=[0]"], "topk"),
    (
        "split-ratio-negative",
        ["--model=MeLU", "--user_split_ratio=[1.2,0,-0.2]"],
        "user_split_ratio",
    ),
    ("new-user-limit-one", ["--model=MeLU", "--new_user_max_inters=1"], "new_user_max_inters"),
    ("cold-user-ratio-one", ["--model=MeLU", "--cold_user_ratio=1.0"], "cold_user_ratio"),
    ("empty-shrinkage-grid", ["--model=UserItemBias", "--shrinkage_grid=[]"], "shrinkage_grid"),
    ("empty-phase-plan", ["--model=TargetMF", "--train_phases=[]"], "train_phases"),
    # not one of the choices
    ("feedback-misspelt", ["--model=MeLU", "--meta_feedback=implicite"], "meta_feedback"),
    ("user-split-unknown", ["--model=MeLU", "--user_split=alphabetic"], "user_split"),
    ("support-mode-unknown", ["--model=MeLU", "--support_mode=last"], "support_mode"),
    ("local-update-unknown", ["--model=CCML", "--local_update=all"], "local_update"),
    ("learner-unknown", ["--model=BPR", "--learner=adamm"], "learner"),
    ("modality-unknown", ["--model=MML", "--modalities=['id','sound']"], "modalities"),
    ("eval-mode-unknown", ["--model=BPR", "--eval_args={'mode':'uni0'}"], "eval_args"),
    (
        "negative-sampling-unknown",
        ["--model=BPR", "--train_neg_sample_args={'distribution':'pop'}"],
        "train_neg_sample_args",
    ),
    # metrics
    ("metric-unknown", ["--model=MeLU", "--metrics=['nosuch']"], "metrics"),
    ("valid-metric-unknown", ["--model=MeLU", "--valid_metric=nosuch"], "valid_metric"),
    ("valid-metric-without-k", ["--model=BPR", "--valid_metric=NDCG"], "valid_metric"),
    ("valid-metric-k-not-in-topk", ["--model=BPR", "--valid_metric=NDCG@5"], "valid_metric"),
    (
        "valid-metric-not-in-metrics",
        ["--model=MeLU", "--metrics=['Recall','NDCG']"],
        "valid_metric",
    ),
    ("ranking-and-value-metrics", ["--model=MeLU", "--metrics=['MAE','NDCG']"], "metrics"),
    (
        "value-metrics-full-ranking",
        ["--model=BPR", "--metrics=MAE", "--valid_metric=MAE"],
        "metrics",
    ),
    # a boolean given another word (RecBole would read it as True)
    ("boolean-maybe", ["--model=MeLU", "--first_order=maybe"], "first_order"),
    ("boolean-yes", ["--model=BPR", "--reproducibility=yes"], "reproducibility"),
    ("boolean-number", ["--model=MeLU", "--cold_start_split=1"], "cold_start_split"),
    ("sequential-not-repeatable", ["--model=SASRec", "--repeatable=False"], "repeatable"),
    # keys
    ("key-misspelt", ["--model=MeLU", "--epochz=3"], "epochz"),
]


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the data was loaded: the check came too late")

    monkeypatch.setattr("recbole_coldmeta.quick_start.quick_start.create_dataset", refuse)


@pytest.mark.parametrize("args, key", [pytest.param(a, k, id=i) for i, a, k in CASES])
def test_a_bad_config_input_is_one_error_line_before_any_work(
    capsys, tiny_data_path, no_training, args, key
):
    code = main([*args, "--dataset=tiny", f"--data_path={tiny_data_path}"])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert key in lines[0]
    assert "Traceback" not in out + err
    assert not Path("saved").exists() or not any(Path("saved").iterdir())


def test_a_bad_value_in_a_config_file_names_the_file(capsys, tiny_data_path, no_training):
    Path("bad.yaml").write_text("learning_rate: -0.5\n")
    code = main(["--model=MeLU", "--config_files=bad.yaml", f"--data_path={tiny_data_path}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: learning_rate=-0.5 must be a number > 0 (from config file 'bad.yaml').\n"


def test_the_catalogue_covers_each_class():
    assert len(CASES) >= 15 and len({case_id for case_id, _, _ in CASES}) == len(CASES)
