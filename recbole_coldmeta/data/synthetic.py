"""Small synthetic datasets in RecBole's atomic format, for tests and examples.

Ratings come from a low-rank model with user and item biases, so models that learn do better than
the global mean; users carry MeLU-style profile fields and items carry year, genres and a title.
"""

from pathlib import Path

import numpy as np

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
