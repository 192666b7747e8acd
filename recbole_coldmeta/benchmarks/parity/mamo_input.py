"""MAMO's input (dongmanqing/Code-for-MAMO) built from our split: their ML-1M feature encoding
applied to a dataset's user and item files, and their per-user tensors from the export.

Their ``prepare_data`` writes four pickles per user (user row, item rows, ratings, state codes)
from ML-1M's ``users.dat`` and ``movies_extrainfos.dat``; :class:`SplitRows` gives their
``LOCALUpdate`` the same tensors from the export of :mod:`.melu_export`, and the features are
encoded by their ``prepareList`` (its lists and ``user_converting_ml``, read from the checkout by
:mod:`.mamo_official`).

NOTE: the mapping of ml-100k's features onto their ML-1M loader, each the closest we found:

- user ``[gender, age, occupation]``: gender by their ``['M', 'F']``; age in ML-1M's 7 groups
  (under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+: their ``list_age`` holds the groups'
  starts); occupation: the dataset's occupation names, sorted, are the codes 0, 1, ... of their
  21-row table (ml-100k has 21: an embedding needs distinct codes only, and a mapping onto
  ML-1M's categories would merge some, e.g. engineer and technician);
- item ``[rate, year, 25 genres, 2,186 directors]`` (their ``item_converting_ml`` layout): rate
  ``UNRATED`` (ml-100k has no MPAA rating), the release year indexed in item-file order (their
  ``year_list``), the genres by name in their ``List_genre.txt`` (``Children's`` is their
  ``Family``, ``unknown`` their ``nan``), no director (ml-100k names none: their director layer
  sees zeros);
- the state codes (their warm/cold label of a row, unused by their model) are 0.
"""

import bisect
import csv
import os

#: Genre tokens whose name in their ``List_genre.txt`` differs.
GENRE_NAMES = {"Children's": "Family", "unknown": "nan"}
#: Their ``list_rate`` entry of a movie without an MPAA rating.
NO_RATE = "UNRATED"


def read_atomic(path):
    """The rows of a RecBole atomic file as dicts by field name (the ``:type`` suffix dropped);
    ``ValueError`` naming the file when it is missing."""
    if not os.path.isfile(path):
        raise ValueError(
            f"{path} does not exist: give --raw_dir the dataset folder with its .user and .item "
            f"files (age, gender, occupation; release_year, class)."
        )
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        names = [column.split(":")[0] for column in next(reader)]
        return [dict(zip(names, row)) for row in reader]


def age_group(age, starts):
    """The ML-1M age group of ``age``: the largest of their group ``starts`` not above it (the
    first group, 'under 18', for any younger age)."""
    return starts[max(bisect.bisect_right(starts, int(age)) - 1, 0)]


def encode_users(rows, their):
    """``{user id: [gender, age, occupation]}`` (their ``user_converting_ml`` on each user's
    gender, ML-1M age group and occupation code; see the module NOTE)."""
    import pandas as pd

    lists = their.lists.list_movieLens
    occupations = sorted({row["occupation"] for row in rows})
    if len(occupations) > their.utils.config["n_occupation"]:
        raise ValueError(
            f"the user file has {len(occupations)} occupations; their MLUserLoading embeds "
            f"{their.utils.config['n_occupation']}: use a dataset with at most that many."
        )
    encoded = {}
    for row in rows:
        age = age_group(row["age"], lists["list_age"])
        code = occupations.index(row["occupation"])
        frame = pd.DataFrame([[row["user_id"], row["gender"], age, code]])
        encoded[row["user_id"]] = their.lists.user_converting_ml(
            frame, lists["list_age"], lists["list_gender"], lists["list_occupation"]
        )
    return encoded


def encode_items(rows, their):
    """``{item id: [rate, year, genre x 25, director x 2186]}``, their ``item_converting_ml``
    layout (see the module NOTE); ``ValueError`` on a genre they do not list or more years than
    their year table holds."""
    lists, sizes = their.lists.list_movieLens, their.utils.config
    years = list(dict.fromkeys(row["release_year"] for row in rows))  # file order, as theirs
    if len(years) > sizes["n_year"]:
        raise ValueError(
            f"the item file has {len(years)} release years; their MLItemLoading embeds "
            f"{sizes['n_year']}: use a dataset with at most that many."
        )
    assert len(lists["list_genre"]) == sizes["n_genre"]
    assert len(lists["list_director"]) == sizes["n_director"]
    encoded = {}
    for row in rows:
        genres = [0] * sizes["n_genre"]
        for token in row["class"].split():
            name = GENRE_NAMES.get(token, token)
            if name not in lists["list_genre"]:
                raise ValueError(
                    f"genre {token!r} of item {row['item_id']} is not in their List_genre.txt: "
                    f"add its name to GENRE_NAMES."
                )
            genres[lists["list_genre"].index(name)] = 1
        rate = lists["list_rate"].index(NO_RATE)
        year = years.index(row["release_year"])
        encoded[row["item_id"]] = [rate, year] + genres + [0] * sizes["n_director"]
    return encoded


class SplitRows:
    """Their eight per-user tensors (``load_user_info``: support and query user rows ``x1``,
    item rows ``x2``, rating classes ``y`` (rating - 1), state codes ``y0``) from our split;
    called as their ``load_user_info``.

    Args:
        users: ``{user id: [3]}`` their user rows; items: ``{item id: [2213]}`` their item rows.

    ``tasks[key] = (user, support, query)`` (rows ``(item, rating)``) names what
    ``load_user_info(key, ...)`` returns.
    """

    def __init__(self, users, items):
        import torch

        self.users = users
        self.item_index = {item: i for i, item in enumerate(items)}
        self.items = torch.tensor(list(items.values()), dtype=torch.uint8)  # [N, 2213]; < 256
        self.tasks = {}

    def x1(self, user, n):
        """``[n, 3]`` int64: the user's row, repeated (their ``np.tile``)."""
        import torch

        return torch.tensor([self.users[user]], dtype=torch.long).expand(n, -1).contiguous()

    def x2(self, rows):
        """``[len(rows), 2213]`` int64: each row's item."""
        return self.items[[self.item_index[item] for item, _ in rows]].long()

    def __call__(self, user_id, dataset, support_size, query_size, device):
        import torch

        user, support, query = self.tasks[user_id]
        assert (support_size, query_size) == (len(support), len(query))
        parts = []
        for rows in (support, query):
            y = torch.tensor([rating - 1 for _, rating in rows], dtype=torch.long)
            parts += [self.x1(user, len(rows)), self.x2(rows), y, torch.zeros_like(y)]
        return [part.to(device) for part in parts]
