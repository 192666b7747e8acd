"""CCML: the sampler on constructed cases, the prototype score, the inner-loss composition."""

import math

import pytest
import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.meta import adapt, task_params
from recbole_coldmeta.model.task_layers import info_nce, propagate_task_graphs, prototype_scores
from recbole_coldmeta.quick_start import build_config, run_coldmeta
from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import ConfigError

SMALL = {"n_similar": 5, "n_negative": 10, "n_beneficial": 3, "pool_size": 20, "epochs": 1}


def _setup(tiny_config, **overrides):
    config = build_config("CCML", "tiny", config_dict={**tiny_config, **SMALL, **overrides})
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    return get_model("CCML")(config, train_data.dataset), train_data, test_data


def test_prototype_score_by_hand():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    primary = torch.stack([e1, e2, torch.zeros(2)]).unsqueeze(0)  # levels 1, 2, 3; level 3 empty
    candidate = torch.stack([e2, e1, e1]).view(1, 1, 3, 2)
    # pairs i < j: (1,2): cos(e1, e1) * 1 = 1; (1,3): cos(e1, e1) * 2 = 2; (2,3): cos(e2, e1) = 0
    assert prototype_scores(primary, candidate).item() == pytest.approx(3.0)


def test_info_nce_prefers_aligned_positives():
    anchor = torch.tensor([[1.0, 0.0]])
    aligned = info_nce(anchor, torch.tensor([[[2.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]]), 0.5)
    opposed = info_nce(anchor, torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[2.0, 0.0]]]), 0.5)
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0)))
    assert aligned.item() == pytest.approx(expected) and opposed.item() > aligned.item()


def test_similar_negative_and_beneficial_tasks_on_a_constructed_case(tiny_config, monkeypatch):
    model, train_data, _ = _setup(
        tiny_config, task_sampling="similar_only", candidate_pool="random", pool_size=41
    )
    n = len(model.pool.user)
    angles = torch.linspace(0, math.pi, n)  # task k's gradient is at angle k: cosine falls with k
    task_grads = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    prototypes = torch.zeros(n, len(model.rating_levels), 4)
    monkeypatch.setattr(model, "_task_statistics", lambda: (task_grads, prototypes, None))
    monkeypatch.setattr(
        model,
        "_support_gradients",
        lambda users, *a: torch.tensor([[1.0, 0.0]]).repeat(len(users), 1),
    )
    users = model.pool.user[-1:]  # the primary is the last task, excluded from its own pool
    beneficial, negatives = model.collaborators(
        users, *[model.pool.item[-1:], model.pool.label[-1:], model.pool.mask[-1:]]
    )
    assert beneficial[0].tolist() == [0, 1, 2]
    assert sorted(negatives[0].tolist()) == list(range(n - 11, n - 1))


def test_graph_propagation_equals_dense_lightgcn_by_hand():
    # user 0 rated items 7 and 8, user 1 rated item 8; a padding row (item 7) must not count
    user_nodes = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    item_a, item_b = torch.tensor([1.0, 1.0]), torch.tensor([2.0, -1.0])
    item_rows = torch.stack([item_a, item_b, item_b, item_a]).unsqueeze(0)
    row_user = torch.tensor([0, 0, 1, 1])
    row_item = torch.tensor([[7, 8, 8, 7]])
    valid = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    users, items = propagate_task_graphs(user_nodes, item_rows, row_user, row_item, valid, 2)

    adjacency = torch.zeros(4, 4)  # nodes: user 0, user 1, item 7, item 8
    for u, i in [(0, 2), (0, 3), (1, 3)]:
        adjacency[u, i] = adjacency[i, u] = 1.0
    degree = adjacency.sum(1).rsqrt()
    norm = degree.unsqueeze(1) * adjacency * degree.unsqueeze(0)
    layer0 = torch.stack([user_nodes[0, 0], user_nodes[0, 1], item_a, item_b])
    expected = (layer0 + norm @ layer0 + norm @ norm @ layer0) / 3
    torch.testing.assert_close(users[0], expected[:2])
    torch.testing.assert_close(items[0, :3], expected[[2, 3, 3]])


def test_refinement_feeds_graph_vectors_to_the_decision_layers(tiny_config):
    model, train_data, _ = _setup(tiny_config, refine_layers=2)
    batch = next(iter(train_data))
    users, items = batch["user_id"], batch["support_item"]
    labels, mask = batch["support_label"], batch["support_mask"]
    embedding = model.embedding_size
    assert model.decision[0].in_features == model.features(users, items).shape[-1]
    adapted, featurize = model.adapt_task(users, items, labels, mask, keep_graph=True)
    refined = featurize(batch["query_item"])
    plain = model.features(users, batch["query_item"])
    # the own feature part is MeLU's; the graph part of the user differs from its own node vector
    torch.testing.assert_close(refined[..., : -2 * embedding], plain[..., : -2 * embedding])
    user_graph = slice(-2 * embedding, -embedding)
    assert not torch.allclose(refined[..., user_graph], plain[..., user_graph])
    # meta-training reaches the embeddings through the graph
    loss = model.calculate_loss(batch)
    loss.backward()
    assert model.user_embedder.tables[model.user_embedder.fields[0]].weight.grad.abs().sum() > 0


def test_without_cross_task_terms_ccml_is_melu(tiny_config):
    model, train_data, _ = _setup(tiny_config, lambda_task=0.0, lambda_cl=0.0, refine_layers=0)
    batch = next(iter(train_data))
    ccml_loss = model.calculate_loss(batch)
    melu_loss = get_model("MeLU").calculate_loss(model, batch)
    assert torch.equal(ccml_loss, melu_loss)


def test_inner_loss_composition_by_hand(tiny_config, monkeypatch):
    model, train_data, _ = _setup(  # the global-mean prior: task_loss by hand adds no base
        tiny_config,
        lambda_task=0.5,
        lambda_cl=0.0,
        local_steps=1,
        refine_layers=0,
        prior="global_mean",
    )
    batch = next(iter(train_data))
    users, items = batch["user_id"], batch["support_item"]
    labels, mask = batch["support_label"], batch["support_mask"]
    beneficial, _ = model.collaborators(users, items, labels, mask)
    monkeypatch.setattr(model, "collaborators", lambda *a: (beneficial, beneficial))
    aux_items, aux_labels, aux_mask, aux_users = model._aux_rows(beneficial, training=False)
    adapted = model.adapt_to(users, items, labels, mask, keep_graph=False)

    x = model.features(users, items).detach()
    x_aux = model.features(aux_users.flatten(1), aux_items.flatten(1)).detach()

    def by_hand(params):
        own = model.task_loss(params, x, labels, mask.float())
        aux = model.task_loss(params, x_aux, aux_labels.flatten(1), aux_mask.flatten(1).float())
        return own + 0.5 * aux

    start = task_params(model.decision, model.adapted_names, len(users), keep_graph=False)
    expected = adapt(start, by_hand, 1, model.local_lr)
    for name in adapted:
        torch.testing.assert_close(adapted[name], expected[name])


def test_contrastive_term_changes_adaptation(tiny_config):
    batch = None
    results = []
    for lambda_cl in (0.0, 1.0):
        model, train_data, _ = _setup(tiny_config, lambda_task=0.0, lambda_cl=lambda_cl, seed=1)
        batch = batch or next(iter(train_data))
        args = (
            batch["user_id"],
            batch["support_item"],
            batch["support_label"],
            batch["support_mask"],
        )
        results.append(model.adapt_to(*args, keep_graph=False))
    assert not torch.allclose(results[0]["0.weight"], results[1]["0.weight"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_beneficial": 6}, "n_beneficial=6 > n_similar=5"),
        ({"pool_size": 10}, "pool_size=10 is smaller"),
        ({"n_negative": 60, "pool_size": 70}, "at least n_similar"),
        (
            {
                "candidate_pool": "profile",
                "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
            },
            "needs user profile",
        ),
        ({"refine_layers": -1}, "refine_layers=-1 must be an integer"),
        (
            {
                "candidate_pool": "random",
                "use_item_id": False,
                "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
            },
            "embeds no user and no item feature",
        ),
    ],
)
def test_bad_sampler_settings_are_clear_errors(tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _setup(tiny_config, **overrides)


@pytest.mark.parametrize("pool", ["profile", "knn_features", "co_interaction", "random"])
def test_smoke_run_reports_cold_user_metrics(tiny_config, pool):
    result = run_coldmeta(
        "CCML", "tiny", config_dict={**tiny_config, **SMALL, "candidate_pool": pool}
    )
    assert {"mae", "rmse", "query_ndcg@3"} <= set(result["test_result"])
    assert 0.3 < result["test_result"]["mae"] < 2.0


@pytest.mark.parametrize("refine_layers", [0, 2])
def test_evaluation_repeats_exactly_and_leaves_meta_parameters_untouched(
    tiny_config, refine_layers
):
    import copy

    from recbole_coldmeta.registry import get_trainer

    config = build_config(
        "CCML", "tiny", config_dict={**tiny_config, **SMALL, "refine_layers": refine_layers}
    )
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model("CCML")(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "CCML")(config, model)
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    before = copy.deepcopy(model.state_dict())
    first = trainer.evaluate(test_data, load_best_model=False)
    assert trainer.evaluate(test_data, load_best_model=False) == first
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_refined_predict_and_full_sort_agree(tiny_config):
    model, _, test_data = _setup(tiny_config, refine_layers=2)
    model.eval()
    rows = test_data.dataset.inter_feat
    user = rows["user_id"][0]
    rows = rows[rows["user_id"] == user]
    test_data.support.add_to(rows)  # the user's support rows, as an evaluation batch has
    scores = model.predict(rows)
    full = model.full_sort_predict(rows[:1]).view(1, -1)
    torch.testing.assert_close(full[0, rows["item_id"]], scores)


def test_refinement_without_user_features_starts_users_from_zero(tiny_config):
    load_col = {"inter": ["user_id", "item_id", "rating", "timestamp"]}
    model, train_data, _ = _setup(tiny_config, candidate_pool="random", load_col=load_col)
    batch = next(iter(train_data))
    assert model.user_embedder.output_size == 0 and model.refine_layers > 0
    loss = model.calculate_loss(batch)
    assert torch.isfinite(loss)


def test_ccml_with_the_bias_prior_trains_and_predicts(tiny_config):
    model, train_data, test_data = _setup(tiny_config, prior="biases")
    loss = model.calculate_loss(next(iter(train_data)))
    loss.backward()
    assert torch.isfinite(loss) and model.decision[0].weight.grad.abs().sum() > 0
    model.eval()
    scores = model.predict(next(iter(test_data))[0])
    assert torch.isfinite(scores).all() and 0.0 < scores.mean() < 6.0
