"""Small synthetic datasets in RecBole's atomic format, for tests and examples.

Ratings come from a low-rank model with user and item biases, so models that learn do better than
the global mean; users carry MeLU-style profile fields and items carry year, genres and a title.
The cross-domain pair (:func:`write_synthetic_cross_domain`) shares user tastes across two
domains and gives items titles whose words follow their latent factors, so both a bridge and a
text encoder have something to learn. :func:`write_tiny_bert` writes a small random BERT that
tokenises any text, so the text path runs offline without a model download.
"""

import string
from pathlib import Path

import numpy as np
import torch

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Thriller", "Animation", "Documentary")
WORDS = ("star", "night", "river", "ghost", "city", "love", "war", "dream", "moon", "game", "road")


def synthetic_ratings(n_users, n_items, inters_per_user, rank=4, seed=0):
    """Ratings of a low-rank model: an ``(user, item, rating, timestamp)`` array per interaction.

    Args:
        n_users (int): number of users.
        n_items (int): number of items.
        inters_per_user (tuple): ``(low, high)`` interactions per user, inclusive.
        rank (int): rank of the latent preference model.
        seed (int): seed of the generator; the same seed gives the same data.

    Returns:
        tuple: ``(rows, user_factors)``; rows is a list of ``(user, item, rating, timestamp)`` with
        0-based ids and integer ratings in 1..5.
    """
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(size=(n_users, rank))
    item_factors = rng.normal(size=(n_items, rank))
    user_bias = rng.normal(scale=0.5, size=n_users)
    item_bias = rng.normal(scale=0.7, size=n_items)
    popularity = np.exp(rng.normal(scale=1.0, size=n_items))
    popularity /= popularity.sum()
    first_seen = np.sort(rng.integers(0, 10_000_000, size=n_users))
    rows = []
    for user in range(n_users):
        count = int(rng.integers(inters_per_user[0], inters_per_user[1] + 1))
        count = min(count, n_items)
        items = rng.choice(n_items, size=count, replace=False, p=popularity)
        affinity = item_factors[items] @ user_factors[user] / np.sqrt(rank)
        raw = 3.5 + user_bias[user] + item_bias[items] + 0.8 * affinity
        raw += rng.normal(scale=0.4, size=count)
        ratings = np.clip(np.rint(raw), 1, 5).astype(int)
        times = first_seen[user] + np.sort(rng.integers(0, 2_000_000, size=count))
        rows += list(zip([user] * count, items.tolist(), ratings.tolist(), times.tolist()))
    return rows, user_factors


def write_synthetic_dataset(
    folder, name="tiny", n_users=60, n_items=80, inters_per_user=(15, 30), seed=0
):
    """Write ``<folder>/<name>/<name>.inter|.user|.item`` and return ``folder`` (the data_path).

    Fields: inter ``user_id, item_id, rating, timestamp``; user ``user_id, age, gender,
    occupation, zip_code``; item ``item_id, movie_title, release_year, class`` — the field names of
    RecBole's ml-100k, so the same configs apply.
    """
    rng = np.random.default_rng(seed + 1)
    rows, _ = synthetic_ratings(n_users, n_items, inters_per_user, seed=seed)
    target = Path(folder) / name
    target.mkdir(parents=True, exist_ok=True)
    with open(target / f"{name}.inter", "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for user, item, rating, timestamp in rows:
            f.write(f"u{user}\ti{item}\t{rating}\t{timestamp}\n")
    with open(target / f"{name}.user", "w", encoding="utf-8") as f:
        f.write("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n")
        for user in range(n_users):
            age = int(rng.choice([18, 25, 35, 45, 56]))
            gender = str(rng.choice(["M", "F"]))
            occupation = f"occ{int(rng.integers(0, 6))}"
            f.write(f"u{user}\t{age}\t{gender}\t{occupation}\t{int(rng.integers(10000, 99999))}\n")
    with open(target / f"{name}.item", "w", encoding="utf-8") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
        for item in range(n_items):
            title = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
            genres = " ".join(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False))
            year = int(rng.integers(1970, 2000))
            f.write(f"i{item}\t{title}\t{year}\t{genres}\n")
    return str(folder)


#: Word pairs of the synthetic titles: one word of a pair per latent factor, by the factor's sign.
FACTOR_WORDS = (
    ("dark", "bright"),
    ("epic", "quiet"),
    ("space", "home"),
    ("war", "love"),
    ("old", "new"),
    ("fast", "slow"),
)


def write_synthetic_cross_domain(
    folder,
    source_name="cdr-example-books",
    target_name="cdr-example-movies",
    n_users=400,
    overlap_ratio=0.75,
    n_items=(150, 120),
    inters_per_user=(8, 30),
    missing_text_ratio=0.2,
    seed=0,
):
    """Write a source and a target domain sharing users, as two RecBole atomic datasets.

    Each user has one taste vector ``z_u``; a rating is ``3.6 + b_u + b_i + z_u . a_i`` plus
    noise, rounded to 1..5, with item factors ``a_i`` drawn per domain (so the domains share users,
    never items). A share ``overlap_ratio`` of the users rates in both domains, the others in one
    domain only. Each item's title is one word per latent factor, picked by the factor's sign
    (``FACTOR_WORDS``), plus a domain word; ``missing_text_ratio`` of the items have no title.

    Files: ``<folder>/<name>/<name>.inter`` (``user_id:token, item_id:token, rating:float``) and
    ``<name>.item`` (``item_id:token, title_text:token, has_text:float``) for both names.

    Returns:
        str: ``folder``, the data_path of both datasets.
    """
    rng = np.random.default_rng(seed)
    rank = len(FACTOR_WORDS)
    tastes = rng.normal(size=(n_users, rank))
    user_bias = rng.normal(scale=0.4, size=n_users)
    in_both = rng.random(n_users) < overlap_ratio
    only_source = ~in_both & (rng.random(n_users) < 0.5)
    members = (in_both | only_source, in_both | ~only_source)
    for domain, (name, size) in enumerate(zip((source_name, target_name), n_items)):
        factors = rng.normal(size=(size, rank))
        item_bias = rng.normal(scale=0.5, size=size)
        rows = []
        for user in np.flatnonzero(members[domain]):
            count = min(int(rng.integers(inters_per_user[0], inters_per_user[1] + 1)), size)
            items = rng.choice(size, size=count, replace=False)
            raw = 3.6 + user_bias[user] + item_bias[items] + factors[items] @ tastes[user] / 2.0
            ratings = np.clip(np.rint(raw + rng.normal(scale=0.3, size=count)), 1, 5)
            rows += [(user, item, int(r)) for item, r in zip(items.tolist(), ratings.tolist())]
        prefix = "s" if domain == 0 else "t"
        target = Path(folder) / name
        target.mkdir(parents=True, exist_ok=True)
        with open(target / f"{name}.inter", "w", encoding="utf-8") as f:
            f.write("user_id:token\titem_id:token\trating:float\n")
            for user, item, rating in rows:
                f.write(f"u{user}\t{prefix}{item}\t{rating}\n")
        kind = ("book", "film")[domain]
        with open(target / f"{name}.item", "w", encoding="utf-8") as f:
            f.write("item_id:token\ttitle_text:token\thas_text:float\n")
            for item in range(size):
                if rng.random() < missing_text_ratio:
                    f.write(f"{prefix}{item}\t\t0\n")
                    continue
                words = [pair[int(value > 0)] for pair, value in zip(FACTOR_WORDS, factors[item])]
                f.write(f"{prefix}{item}\t{' '.join(words)} {kind}\t1\n")
    return str(folder)


def write_tiny_bert(model_dir, hidden_size=32, num_layers=2, seed=0):
    """Save a random BERT with a character-level WordPiece vocabulary into ``model_dir``.

    Every lower-case ASCII text tokenises without [UNK] (one token per character), so the full
    ``transformers`` code path runs on any item text with no download. The weights are random but
    fixed by ``seed`` (drawn under ``torch.random.fork_rng``, leaving the global RNG untouched).
    It is a smoke-test encoder: its embeddings separate different strings, not meanings.

    Returns:
        str: ``model_dir``.
    """
    import transformers

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    characters = string.ascii_lowercase + string.digits
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *characters]
    vocab += [f"##{c}" for c in characters + string.punctuation]
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformers.BertModel(config).save_pretrained(model_dir)
    tokenizer = transformers.BertTokenizer(str(model_dir / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(model_dir)
    return str(model_dir)
